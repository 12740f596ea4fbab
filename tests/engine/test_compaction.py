"""Long-lived cyclic instances keep working: completed history is compacted out of the state."""

from __future__ import annotations

from engine import inbox, runtime, spiff


def test_loop_runs_past_spiffs_depth_limit_and_state_stays_small(sessions, deploy):
    deploy("loop.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "loop", by="anna").id
    sizes = []
    for i in range(600):  # raw SpiffWorkflow stops finding ready tasks after ~500 iterations
        with sessions.begin() as s:
            [task] = inbox.tasks(s, instance_id=iid)
            runtime.complete_task(s, task.id, {"more": i < 599}, by="anna")
            if i in (10, 590):
                sizes.append(len(runtime.get_instance(s, iid).state))
    with sessions.begin() as s:
        inst = runtime.get_instance(s, iid)
        assert str(inst.status) == "completed"
        assert runtime.instance_variables(s, iid)["count"] == 600
    assert sizes[1] < sizes[0] * 1.5, sizes


def test_compacted_state_reloads_and_continues(sessions, deploy):
    deploy("loop.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "loop", by="anna").id
    for _ in range(50):
        runtime.forget_cache()
        with sessions.begin() as s:
            [task] = inbox.tasks(s, instance_id=iid)
            runtime.complete_task(s, task.id, {"more": True}, by="anna")
    with sessions.begin() as s:
        inst = runtime.get_instance(s, iid)
        version = s.get(runtime.ProcessVersion, inst.version_id)
        from engine import deploy as deploy_mod

        workflow = spiff.load_state(inst.state, deploy_mod.bundle_for(s, version))
        assert spiff.task_count(workflow) < 20
        assert runtime.instance_variables(s, iid)["count"] == 50
