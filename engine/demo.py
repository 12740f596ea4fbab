"""A demo office: realistic Finnish customers, a year of service processes, contacts (`polku seed-demo`).

Everything is made through the engine's public functions, as an expert would: customers via
`engine.customers`, service processes via `runtime.start_instance` / `runtime.complete_task` /
`runtime.fire_instance_timers` with `now` moved back in time, contacts via `engine.contacts`.
Each task is filled from the form its model declares (`runtime.task_form`): known fields get
plausible values, any other required field a value of its type, dates are fitted to the form's
domain checks, so a changed model still seeds. All cases of one customer run together in time
order, with the instances the engine starts meanwhile: each ended service line's own aftercare
(contacted on time, late, overdue, reached only after "customer not reached" attempts run as the
contact's task action, or not reached at all), follow-up days a year after consulting, and new
service processes from needs found in aftercare. Some assessments end "no service need now", some
customers decline the service promise. Beside the cases: a providers registry (with the providers'
own feedback) that delivers the lines, and the national customer survey's last four quarters.

Deterministic (one seeded random generator) and idempotent: a customer that already exists is
left alone together with its cases, so a second run adds nothing. The caller owns the
transaction; nothing here commits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import actions, aftercare, contacts, customers, kpi, providers, runtime, survey, users
from .db import utcnow
from .errors import InvalidInput
from .forms import Field
from .models import Instance, InstanceStatus, ProcessVersion, Task, TaskStatus, Timer

SEED = 20260101
CUSTOMER_COUNT = 40
HISTORY_DAYS = 365
OUTCOMES = {6: "no_need_now", 9: "declined", 10: "agreed_later"}  # by customer index % 12; others: services
CONSULTING_DAYS = (400, 480)  # some consulting cases start this many days back: their follow-up days come now
PROCESS = "customer_service"
EXTRA_EXPERTS = (("liisa.laine", "Liisa Laine"), ("mikko.nieminen", "Mikko Nieminen"))
HELSINKI = ZoneInfo("Europe/Helsinki")
CONSULTANT = ("Pekka Kehittäjä", "pekka.kehittaja@konsultointi.example.fi")
NOT_REACHED_AFTER = 3  # the office's default number of attempts (engine.office: aftercare_attempts)
NOT_REACHED = "customer_not_reached"  # the message of the aftercare contact's "customer not reached" action
INTAKE = "asiantuntija"  # completes the unassigned needs assessments of the intake queue

PREFIXES = ("Konepaja", "Rakennus", "Puutyö", "Sähkö", "Metalli", "Kuljetus", "Siivous", "Ravintola",
            "Leipomo", "Ohjelmisto", "Muovi", "Kone", "Teräs", "Maalaus", "Putki", "Kiinteistöhuolto",
            "Hoiva", "Tilintoimisto", "Painotalo", "Autokorjaamo")
SURNAMES = ("Virtanen", "Korhonen", "Mäkinen", "Nieminen", "Mäkelä", "Hämäläinen", "Laine", "Heikkinen",
            "Koskinen", "Järvinen", "Lehtonen", "Saarinen", "Salminen", "Heinonen", "Niemi", "Kinnunen",
            "Salonen", "Turunen", "Lindholm", "Rantanen", "Aalto", "Karjalainen", "Laaksonen", "Pelkonen")
FORMS = ("Oy", "Oy", "Oy", "Ky", "Tmi", "Oy Ab")
INDUSTRIES = {"Konepaja": "25620 Metallituotteiden työstö", "Rakennus": "41200 Asuin- ja muiden rakennusten rakentaminen",
              "Puutyö": "16230 Muiden rakennuspuusepäntuotteiden valmistus", "Sähkö": "43210 Sähköasennus",
              "Metalli": "25110 Metallirakenteiden valmistus", "Kuljetus": "49410 Tieliikenteen tavarankuljetus",
              "Siivous": "81210 Kiinteistöjen siivous", "Ravintola": "56101 Ravintolat",
              "Leipomo": "10710 Leipomotuotteiden valmistus", "Ohjelmisto": "62010 Ohjelmistojen suunnittelu",
              "Muovi": "22290 Muiden muovituotteiden valmistus", "Kone": "28990 Muiden erikoiskoneiden valmistus",
              "Teräs": "24100 Raudan, teräksen ja rautaseosten valmistus", "Maalaus": "43341 Maalaus",
              "Putki": "43220 LVI-asennus", "Kiinteistöhuolto": "81100 Kiinteistönhoito",
              "Hoiva": "87900 Muut sosiaalihuollon laitospalvelut", "Tilintoimisto": "69202 Kirjanpito",
              "Painotalo": "18120 Muu painaminen", "Autokorjaamo": "45200 Moottoriajoneuvojen huolto"}
MUNICIPALITIES = ("Tampere", "Nokia", "Ylöjärvi", "Kangasala", "Lempäälä", "Pirkkala", "Valkeakoski",
                  "Sastamala", "Orivesi", "Mänttä-Vilppula", "Akaa", "Hämeenkyrö")
FIRST_NAMES = ("Matti", "Anna", "Juha", "Leena", "Timo", "Sari", "Jari", "Päivi", "Kari", "Minna", "Antti", "Hanna")
REASONS = {"recruitment": "Tarvitsee lisää osaajia tilauskannan kasvaessa",
           "staff_training": "Henkilöstö tarvitsee uusia taitoja",
           "business_development": "Haluaa tehostaa tuotantoa",
           "staff_reduction": "Tilauskanta laskenut, edessä vähennyksiä",
           "start_up": "Yrittäjä aloittaa uutta toimintaa",
           "financing": "Tarvitsee rahoitusta investointiin",
           "innovation_internationalisation": "Suunnittelee vientiä Ruotsiin"}
NEED_MIX = (["recruitment"], ["recruitment"], ["recruitment"], ["staff_training"], ["business_development"],
            ["financing"], ["recruitment", "staff_training"], ["staff_reduction", "staff_training"],
            ["start_up"], ["innovation_internationalisation"], ["recruitment"], ["staff_training"])
WENT_WELL = ("Hakijoita tuli nopeasti ja he olivat sopivia.", "Kouluttaja tunsi alan hyvin.",
             "Konsultti paneutui yrityksen tilanteeseen.", "Yhteyshenkilö oli helposti tavoitettavissa.",
             "Palvelu käynnistyi ripeästi.")
KEEP_IN_TOUCH = ("Soitetaan puolen vuoden päästä, kun tilauskanta selviää.",
                 "Asiakas ottaa yhteyttä, kun uusi rekrytointitarve tulee.", "Tavataan yrityskäynnillä syksyllä.")
PROVIDERS = (  # the registry: (name, kind, contact person, the provider's own feedback to the office)
    ("Tampereen Aikuiskoulutus Oy", "training", "Riitta Koivisto",
     "Yhteishankintakoulutuksen ryhmät täyttyivät hyvin; osa yrityksistä toivoi lyhyempiä jaksoja."),
    ("Pirkanmaan Ammattiopisto Oy", "training", "Jukka Lahtinen", ""),
    ("Kehitysvoima Consulting Oy", "consultant", "Pekka Kehittäjä",
     "Yritysten lähtötilanteen kuvaus TE-toimistosta nopeutti konsultoinnin aloitusta."),
    ("Tuotantotalous Partners Oy", "consultant", "Marja Salo", ""),
    ("Pirkanmaan Uusyrityskeskus ry", "partner", "Sanna Aho",
     "Ohjatut asiakkaat olivat hyvin valmistautuneita; liiketoimintasuunnitelmat puuttuivat vielä muutamalta."),
    ("Yritysrahoituksen Neuvonta Oy", "partner", "Ville Rinne", ""),
)
SURVEY = (64.5, 67.8, 71.2, 68.9)  # the national survey's positive share, the last four quarters (oldest first)
DECLINED = ("Yritys hoitaa rekrytoinnin itse tällä kertaa.", "Omistajanvaihdos kesken, palataan asiaan myöhemmin.",
            "Asiakas ei halua sitoutua jälkihoitoyhteydenottoon nyt.")
NOT_REACHED_NOTES = ("Ei vastannut, jätetty soittopyyntö.", "Puhelin kiinni.", "Sähköpostiin ei vastausta.",
                     "Yhteyshenkilö lomalla, soitetaan uudelleen.")
FEEDBACK = ("Uudet työntekijät aloittivat hyvin.", "Koulutus vastasi tarpeita.", "Palvelu oli nopeaa ja asiantuntevaa.",
            "Hakijoita tuli vähemmän kuin toivottiin.", "Yhteyshenkilö tavoitettiin helposti.",
            "Asiakas toivoi nopeampaa etenemistä.")


@dataclass
class Plan:
    """How one case behaves: when it starts, how its aftercare goes, what it finds."""

    needs: list[str]
    start: datetime
    aftercare: str = "on_time"  # on_time | late | overdue (left for the supervisor) | not_reached | waiting
    attempts: int = 0  # "customer not reached" before the contact (not_reached: until the office's number)
    positive: bool = True
    new_needs: list[str] = field(default_factory=list)
    follow_up: bool = False
    stop_at: str = ""  # leave the first task whose element id starts so open (work in progress)
    outcome: str = "services"  # services | no_need_now (the assessment ends it) | declined | agreed_later
    recent: bool = False  # the contact is made in the last hours (this month), whenever its line ended
    fast: bool = False  # a short service: planned to end 10-15 days after planning


@dataclass
class Result:
    """What a run made (printed by the CLI)."""

    customers: int = 0
    customers_existing: int = 0
    cases: int = 0
    aftercare: int = 0
    attempts: int = 0
    covered: int = 0
    providers: int = 0
    survey: int = 0
    tasks_completed: int = 0
    timers_fired: int = 0
    contacts: int = 0
    users: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"customers_created": self.customers, "customers_existing": self.customers_existing,
                "cases_started": self.cases, "aftercare_started": self.aftercare, "not_reached_recorded": self.attempts,
                "aftercare_covered": self.covered,
                "tasks_completed": self.tasks_completed,
                "timers_fired": self.timers_fired, "contacts_logged": self.contacts, "providers_created": self.providers,
                "survey_periods_recorded": self.survey,
                "users_created": self.users}


def business_id(rng: random.Random) -> str:
    """Return a random business ID with a valid check digit (found with the customer validator)."""
    while True:
        digits = f"{rng.randrange(1_000_000, 3_400_000):07d}"
        for check in range(10):
            try:
                return customers.validate_business_id(f"{digits}-{check}")
            except InvalidInput:
                continue  # no check digit fits (remainder 1): draw another number


def demo_customers(rng: random.Random, experts: list[str]) -> list[dict[str, Any]]:
    """Return the demo customers' form data (deterministic for a given generator)."""
    rows: list[dict[str, Any]] = []
    names: set[str] = set()
    while len(rows) < CUSTOMER_COUNT:
        prefix = rng.choice(PREFIXES)
        name = f"{prefix} {rng.choice(SURNAMES)} {rng.choice(FORMS)}"
        if name in names:
            continue
        names.add(name)
        headcount = rng.choice((3, 5, 8, 12, 18, 25, 42, 60, 85, 140))
        rows.append({
            "name": name, "business_id": business_id(rng), "industry": INDUSTRIES[prefix],
            "founded_year": str(rng.randrange(1965, 2024)), "headcount": str(headcount),
            "turnover_band": "under_200k" if headcount < 5 else "1m_2m" if headcount < 20 else "2m_10m",
            "situation": rng.choice(("steady", "growth", "growth", "declining")),
            "segment": rng.choice(("local", "local", "domestic", "international_growth", "need_growing")),
            "responsible_expert": experts[len(rows) % len(experts)],
            "contact_person": f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)} ({rng.choice(MUNICIPALITIES)})",
            "phone": f"+358 40 {rng.randrange(100, 999)} {rng.randrange(1000, 9999)}"})
    return rows


def ensure_providers(session: Session, now: datetime) -> int:
    """Add the demo registry's service providers that are missing (by name); return how many were added."""
    rng = random.Random(SEED + 1)  # their business IDs: the customers' draws stay the same
    have = {p.name for p in providers.list_providers(session)}
    added = 0
    for name, kind, person, feedback in PROVIDERS:
        number = business_id(rng)
        if name in have:
            continue
        login = person.lower().replace(" ", ".").replace("ä", "a").replace("ö", "o")
        provider = providers.create_provider(session, {
            "name": name, "business_id": number, "kind": kind, "contact_person": person,
            "email": f"{login}@{name.split()[0].lower().replace('ä', 'a')}.example.fi",
            "phone": f"+358 3 {rng.randrange(100, 999)} {rng.randrange(1000, 9999)}"},
            by="seed", now=now - timedelta(days=HISTORY_DAYS + 30))
        if feedback:
            providers.record_feedback(session, provider.id, feedback, by=INTAKE,
                                      given_on=(now - timedelta(days=40)).date(), now=now - timedelta(days=40))
        added += 1
    return added


def ensure_survey(session: Session, now: datetime) -> int:
    """Record the national customer survey's result of the last four whole quarters when missing; return
    how many were recorded (entered by the supervisor some weeks after each quarter)."""
    year, quarter = now.year, (now.month - 1) // 3  # the quarter before the current one (0: last year's Q4)
    periods = []
    for _ in SURVEY:
        if quarter == 0:
            year, quarter = year - 1, 4
        periods.append(f"{year}-Q{quarter}")
        quarter -= 1
    have = {row.period for row in survey.series(session)}
    added = 0
    for number, (period, percent) in enumerate(zip(reversed(periods), SURVEY, strict=True)):
        if period in have:
            continue
        _key, _starts, ends = survey.parse_period(period)
        at = min(now, datetime.combine(ends + timedelta(days=21), time(10), tzinfo=UTC))
        survey.record(session, period, percent, 38 + 7 * number, "Valtakunnallinen asiakaspalautekysely",
                      by="esimies", now=at)
        added += 1
    return added


def ensure_experts(session: Session) -> list[str]:
    """Create the extra demo experts (marked `demo`); return every demo expert's username."""
    for username, display in EXTRA_EXPERTS:
        if session.scalar(select(users.User.id).where(users.User.username == username)) is None:
            users.add_user(session, username, f"{username}-demo", ["expert"], display_name=display,
                           by="seed").demo = True
    return ["asiantuntija", "expert2", *(u for u, _d in EXTRA_EXPERTS)]


class _Driver:
    """Drives one customer's cases through the forms, moving time on as an expert would."""

    def __init__(self, session: Session, rng: random.Random, now: datetime, result: Result) -> None:
        self.session, self.rng, self.now, self.result = session, rng, now, result
        self.planned_at: dict[str, datetime] = {}

    def value(self, f: Field, when: datetime, plan: Plan, expert: str, task: Task) -> Any:
        """Return a plausible value for one form field, or None to leave it empty."""
        known: dict[str, Any] = {
            "identified_needs": [] if plan.outcome == "no_need_now" else plan.needs, "responsible_expert": expert,
            "process_agreed_with_customer": plan.outcome not in ("declined", "agreed_later"),
            "assessment_outcome": "no_service_need_now" if plan.outcome == "no_need_now" else "services_needed",
            "next_contact_on": (when + timedelta(days=self.rng.randrange(150, 240))).date().isoformat()
            if plan.outcome == "no_need_now" else None,
            "service_promise_outcome": "declined" if plan.outcome == "declined" else "agreed",
            "service_promise_declined_reason": self.rng.choice(DECLINED) if plan.outcome == "declined" else None,
            "assessment_method": self.rng.choice(("company_visit", "phone", "office_meeting")),
            "company_situation": "growth", "segment": "local", "headcount": self.rng.randrange(5, 120),
            "experience_positive": plan.positive, "service_rating": self.rng.choice((4, 5)) if plan.positive
            else self.rng.choice((2, 3)), "new_service_needs": plan.new_needs,
            "follow_up_day_wanted": plan.follow_up, "named_contact_confirmed": True,
            "feedback_from_customer": self.rng.choice(FEEDBACK), "feedback_went_well": self.rng.choice(WENT_WELL),
            "service_met_need": self.rng.choice(("yes", "yes", "partly")) if plan.positive
            else self.rng.choice(("partly", "no")), "keep_in_touch": self.rng.choice(KEEP_IN_TOUCH),
            "reassessed_situation": self.rng.choice(("steady", "growth")),
            "aftercare_attempt_channel": self.rng.choice(("phone", "phone", "email")),
            "aftercare_attempt_note": self.rng.choice(NOT_REACHED_NOTES), "needs_reassessment": "Ei uusia tarpeita nyt."
            if not plan.new_needs else "Uusi tarve tunnistettiin jälkihoidossa.",
            "aftercare_channel": self.rng.choice(("phone", "phone", "meeting", "email")),
            "overdue_action": "reminded_expert", "training_type": None,
            "recruitment_channels": ["job_posting"], "referral_partners": ["finnvera"],
            "referral_carrier": "expert", "development_service_type": "consulting",
            "development_goal": "Läpimenoajan lyhentäminen", "training_provider_name": "Tampereen Aikuiskoulutus Oy",
            "training_planned_with": "te_expert", "training_co_funding_agreed": True,
            "progress_interval": "P3M", "startup_grant_decision": "granted",
        }
        if f.id in known and known[f.id] is not None:
            return known[f.id]
        if f.provider_kinds is not None:
            return self.provider(f.provider_kinds)
        if f.id.endswith("_planned_end"):
            span = (10, 16) if plan.fast else (25, 75)
            return (when + timedelta(days=self.rng.randrange(*span))).date().isoformat()
        if f.id.endswith("_planned_start"):
            return (when + timedelta(days=14)).date().isoformat()
        if f.id.endswith("_progress_interval"):
            return "P3M"
        if f.id.endswith("_outcome"):
            return "completed"
        if f.id.endswith("_status"):
            return "on_track"
        if not f.required:
            return None
        if f.type == "date":
            return when.date().isoformat()
        if f.type == "boolean":
            return True
        if f.type in ("long", "integer"):
            low = int(f.min) if f.min is not None else 0
            return max(low, min(int(f.max) if f.max is not None else 10, self.rng.randrange(1, 10)))
        if f.type == "enum" or f.options:
            first = f.options[0][0] if f.options else ""
            return [first] if f.properties.get("multiple") else first
        if f.properties.get("userRole"):
            return expert
        return "Kirjattu asiakkaan kanssa."

    def fitted(self, f: Field, value: Any, context: dict[str, Any], when: datetime) -> Any:
        """Return the value made to pass the field's domain checks (dates in order, e-mail addresses)."""
        checks = dict(f.checks)
        if "email" in checks and (not isinstance(value, str) or "@" not in value):
            return CONSULTANT[1]
        if f.type != "date" or not isinstance(value, str):
            return value
        day = date.fromisoformat(value[:10])
        for name in ("not_before", "after"):
            other = _date_of(context.get(checks.get(name, "")))
            if other is not None and (day < other or (name == "after" and day == other)):
                day = other + timedelta(days=1 if name == "after" else 0)
        if "not_future" in checks:
            day = min(day, _helsinki_day(when))
        return day.isoformat()

    def provider(self, kinds: tuple[str, ...]) -> str | None:
        """Return a registry provider's id for a provider field of these kinds (None: the office did it itself)."""
        if not kinds:
            return None
        found = [str(pid) for pid, _name, _kind in providers.choices(self.session, kinds)]
        return self.rng.choice(found) if found else None

    def form_data(self, task: Task, when: datetime, plan: Plan, expert: str) -> dict[str, Any]:
        """Return what an expert enters in the task's form on `when` (passes the form's checks)."""
        data: dict[str, Any] = {}
        context = runtime.instance_variables(self.session, task.instance_id)
        for f in runtime.task_form(self.session, task.id):
            if f.readonly:
                continue  # shown from the case, never entered
            value = self.value(f, when, plan, expert, task)
            if value is not None:
                data[f.id] = context[f.id] = self.fitted(f, value, context, when)
        return data

    def when_done(self, task: Task, plan: Plan) -> datetime:
        """Return when an expert does this task, drawn once per task (created + a few days; deliveries
        at their due date; the aftercare contact against its line's end and target)."""
        if task.id not in self.planned_at:
            self.planned_at[task.id] = self._when(task, plan)
        return self.planned_at[task.id]

    def _when(self, task: Task, plan: Plan) -> datetime:
        created = _aware(task.created_at)
        eid = task.element_id
        never = self.now + timedelta(days=3650)
        if eid == "aftercare_contact":
            if self.attempts_left(task, plan):
                return created + timedelta(days=self.rng.randrange(1, 4), hours=self.rng.randrange(0, 6))
            variables = runtime.instance_variables(self.session, task.instance_id)
            ended = _date_of(variables.get("service_ended_on")) or _helsinki_day(created)
            target = int(variables.get("aftercare_target_days") or 14)
            days = {"on_time": self.rng.randrange(1, target + 1),
                    "late": target + self.rng.randrange(3, 16)}.get(plan.aftercare)
            if days is None:
                return never
            day = datetime.combine(ended + timedelta(days=days), time(9), tzinfo=HELSINKI)
            at = max(created + timedelta(hours=1), day + timedelta(hours=self.rng.randrange(0, 7)))
            if plan.recent:  # made in the last hours, this month: the supervisor's month has figures
                early = max(created + timedelta(hours=1), kpi.month_start(self.now) + timedelta(minutes=10),
                            self.now - timedelta(hours=self.rng.randrange(1, 6)))
                at = early if early <= self.now else at
            return at
        if eid == "handle_overdue_aftercare":
            return created + timedelta(days=1) if plan.aftercare == "late" else never
        if eid.startswith("deliver_") and task.due_at is not None:
            return max(created + timedelta(days=1), _aware(task.due_at) - timedelta(days=self.rng.randrange(0, 4)))
        if eid == "hold_follow_up_day" and task.due_at is not None:
            return _aware(task.due_at) + timedelta(days=1)
        return created + timedelta(days=self.rng.randrange(1, 7), hours=self.rng.randrange(0, 6))

    def attempts_left(self, task: Task, plan: Plan) -> bool:
        """Tell whether the customer is not reached this time (an attempt to record, not the contact)."""
        if task.element_id != "aftercare_contact" or not plan.attempts:
            return False
        made = runtime.instance_variables(self.session, task.instance_id).get("aftercare_attempts")
        return len(made) < plan.attempts if isinstance(made, list) else False

    def not_reached(self, task: Task, when: datetime, plan: Plan, expert: str) -> None:
        """Record one "customer not reached" on the aftercare contact (its task action)."""
        for action in actions.actions_of_task(self.session, task.id):
            if action.message == NOT_REACHED:
                context = runtime.instance_variables(self.session, task.instance_id)
                data = {}
                for f in action.form:
                    value = self.value(f, when, plan, expert, task)
                    if value is not None:
                        data[f.id] = self.fitted(f, value, context, when)
                actions.run_task_action(self.session, task.id, action.element_id, data,
                                        by=task.assignee or expert, now=when)
                self.result.attempts += 1
                return
        raise LookupError(f"the aftercare contact offers no '{NOT_REACHED}' action")

    def plan_of(self, instance: Instance, plans: dict[int, Plan]) -> Plan:
        """Return how a case the engine started by itself behaves (a line's aftercare, a need found later).

        An aftercare instance follows the plan of the service process that started it; a service
        process started by a need found in aftercare is an ordinary, well-going case.
        """
        parent = plans.get(instance.parent_instance_id or 0)
        if parent is not None and instance.process_id != PROCESS:
            return parent
        found = runtime.instance_variables(self.session, instance.id).get("identified_needs")
        needs = [n for n in found if isinstance(n, str)] if isinstance(found, list) else []
        return Plan(needs=needs or ["staff_training"], start=_aware(instance.started_at), aftercare="on_time")

    def drive(self, business_key: str, plans: dict[int, Plan], expert: str, until: datetime | None = None) -> None:
        """Run every case of one customer on until now, in time order: fire timers when due, do tasks
        when their day comes. Cases the engine starts meanwhile (each ended service line's aftercare, a
        service process for a need found in aftercare) are driven too, with a plan of their own. With
        `until`, stop there (the customer's next case starts then)."""
        until = min(until or self.now, self.now)
        for _ in range(1000):
            running = list(self.session.scalars(select(Instance).where(
                Instance.business_key == business_key, Instance.status == InstanceStatus.RUNNING)
                .order_by(Instance.id)))
            for instance in running:
                if instance.id not in plans:
                    plans[instance.id] = self.plan_of(instance, plans)
                    self.result.cases += instance.process_id == PROCESS
                    self.result.aftercare += instance.process_id != PROCESS
            ids = [i.id for i in running] or [0]
            steps: list[tuple[datetime, int, str, Any]] = []
            for task in self.session.scalars(select(Task).where(
                    Task.instance_id.in_(ids), Task.state == TaskStatus.READY).order_by(Task.created_at, Task.instance_id, Task.element_id)):
                plan = plans[task.instance_id]
                if plan.stop_at and task.element_id.startswith(plan.stop_at):
                    continue  # work in progress: left open
                steps.append((self.when_done(task, plan), 1, f"{task.instance_id:09d} {task.element_id}", task))
            for iid, due in self.session.execute(select(Timer.instance_id, func.min(Timer.due_at)).where(
                    Timer.instance_id.in_(ids)).group_by(Timer.instance_id)):
                steps.append((_aware(due) + timedelta(minutes=1), 0, f"{iid:09d}", iid))
            if not steps:
                return
            when, kind, _key, item = min(steps, key=lambda p: (p[0], p[1], p[2]))
            if when > until:
                return
            if kind == 0:
                self.result.timers_fired += len(runtime.fire_instance_timers(self.session, item, now=when))
                continue
            task = item
            plan = plans[task.instance_id]
            if self.attempts_left(task, plan):
                self.not_reached(task, when, plan, expert)
                continue
            by = task.assignee or (expert if task.candidate_role == "expert" else "esimies")
            data = self.form_data(task, when, plan, expert)
            covered = [c.task_id for c in aftercare.coverable_contacts(self.session, task.id)]
            if covered:  # the other lines of the case ended about the same time: one talk covers them
                aftercare.complete_covering(self.session, task.id, data, covered, by=by, now=when)
                self.result.covered += len(covered)
            else:
                runtime.complete_task(self.session, task.id, data, by=by, now=when)
            self.result.tasks_completed += 1 + len(covered)


def form_data(session: Session, task_id: str, *, by: str, now: datetime, needs: list[str] | None = None) -> dict[str, Any]:
    """Return plausible values for an open task's form, as the demo office enters them (for tests that
    walk a case on to a later task): a well-going case with the given needs, no new needs."""
    task = session.scalars(select(Task).where(Task.id == task_id)).one()
    driver = _Driver(session, random.Random(SEED), now, Result())
    return driver.form_data(task, now, Plan(needs=list(needs or ["recruitment"]), start=now), by)


def _date_of(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _helsinki_day(moment: datetime) -> date:
    return _aware(moment).astimezone(HELSINKI).date()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _plans(rng: random.Random, index: int, now: datetime) -> list[Plan]:
    """Return the cases of the index-th customer: spread over a year, every stage and aftercare kind."""
    oldest = now - timedelta(days=HISTORY_DAYS)
    count = 2 if index % 5 in (0, 2) else 1
    plans = []
    for k in range(count):
        offset = rng.randrange(5, HISTORY_DAYS - 10) if k == 0 else rng.randrange(5, 200)
        if index % 8 == 7:  # a new customer: the needs assessment waits in the intake queue
            offset = rng.randrange(1, 3)
        elif index % 8 == 3:  # assessed lately: the service is being planned
            offset = rng.randrange(6, 12)
        start = datetime.combine((oldest + timedelta(days=HISTORY_DAYS - offset)).date(), time(8), tzinfo=UTC) \
            + timedelta(hours=rng.randrange(0, 8))
        start = min(start, now - timedelta(hours=offset * 24 - 1))
        kind = ("on_time", "on_time", "on_time", "late", "overdue")[index % 5]
        attempts = 1 + index % 2 if index % 4 == 1 and kind != "overdue" else 0  # reached on a later try
        if index % 10 == 0:
            kind, attempts = "not_reached", NOT_REACHED_AFTER
        plans.append(Plan(needs=list(NEED_MIX[(index + k) % len(NEED_MIX)]), start=start, aftercare=kind,
                          attempts=attempts,
                          positive=index % 3 != 1, new_needs=["staff_training"] if index % 7 == 2 else [],
                          follow_up=index % 6 == 1, stop_at="plan_" if index % 8 == 3 else "",
                          outcome=OUTCOMES.get(index % 12, "services") if k == 0 else "services"))
    if index % 10 == 8:  # a short recruitment ending these days: this month's aftercare contacts
        start = datetime.combine((now - timedelta(days=rng.randrange(28, 34))).date(), time(9), tzinfo=UTC)
        waiting = index % 20 == 18  # one still waits: the customer was not reached on the first try
        plans.append(Plan(needs=["recruitment"], start=start, recent=not waiting, fast=True,
                          aftercare="waiting" if waiting else "on_time", attempts=1 if waiting else 0))
    if index % 10 == 5:  # consulting that ended about a year ago: its follow-up day is held now or soon
        start = datetime.combine((now - timedelta(days=rng.randrange(CONSULTING_DAYS[0], CONSULTING_DAYS[1]))).date(),
                                 time(9), tzinfo=UTC)
        plans.append(Plan(needs=["business_development"], start=start, aftercare="on_time", follow_up=True))
    return plans


def models_deployed(session: Session) -> bool:
    """Return whether the shipped service process is deployed (the demo office needs it)."""
    return session.scalar(select(ProcessVersion.id).where(ProcessVersion.process_id == PROCESS).limit(1)) is not None


def seed_office(session: Session, *, now: datetime | None = None) -> dict[str, Any]:
    """Create the demo office's customers, a year of their cases and contacts; return what was made.

    Customers that already exist (by business ID) are skipped with their cases: a second run
    creates nothing. The shipped models must be deployed.
    """
    now = now or utcnow()
    rng = random.Random(SEED)
    result = Result()
    before = {u.username for u in users.experts(session)}
    experts = ensure_experts(session)
    result.users = sorted(set(experts) - before)
    result.providers = ensure_providers(session, now)
    result.survey = ensure_survey(session, now)
    driver = _Driver(session, rng, now, result)
    for index, data in enumerate(demo_customers(rng, experts)):
        plans = _plans(rng, index, now)  # drawn even for a skipped customer: the others stay the same
        if customers.find_by_business_id(session, data["business_id"]) is not None:
            result.customers_existing += 1
            continue
        customer = customers.create_customer(session, data, by="seed")
        result.customers += 1
        expert = data["responsible_expert"]
        planned: dict[int, Plan] = {}
        for plan in sorted(plans, key=lambda p: p.start):
            driver.drive(customer.business_id, planned, expert, until=plan.start)  # earlier cases up to this start
            reason = REASONS.get(plan.needs[0], "Palvelutarpeen kartoitus")
            contact = contacts.log_contact(session, customer.id, {
                "contacted_on": plan.start.date().isoformat(), "channel": "visit" if index % 2 else "phone",
                "topic": reason, "participants": data["contact_person"],
                "next_contact_on": (plan.start + timedelta(days=180)).date().isoformat()},
                by=expert, now=plan.start)
            result.contacts += 1
            instance = runtime.start_instance(
                session, PROCESS, by=expert, business_key=customer.business_id, now=plan.start,
                data={"business_id": customer.business_id, "company_name": customer.name,
                      "contact_channel": rng.choice(("phone_service", "web_service", "expert_initiative")),
                      "contact_reason": reason})
            contact.instance_id = instance.id
            planned[instance.id] = plan
            result.cases += 1
        driver.drive(customer.business_id, planned, expert)
    return result.as_dict()

