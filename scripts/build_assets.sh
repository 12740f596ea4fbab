#!/bin/sh
# Bundle the front-end sources in webui/assets/ into webui/static/build/ with esbuild.
#
# Run from anywhere after `npm ci` (works offline: only node_modules is read). `make setup`
# runs it. The output is not committed (.gitignore): designer.js, designer.css and the fonts.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
mkdir -p webui/static/build
node_modules/.bin/esbuild webui/assets/designer.js \
  --bundle --minify --format=iife --target=es2020 --log-level=warning \
  --loader:.woff=file --loader:.woff2=file --loader:.ttf=file --loader:.eot=file --loader:.svg=file \
  --asset-names=[name]-[hash] \
  --outdir=webui/static/build
