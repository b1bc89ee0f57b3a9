#!/usr/bin/env bash
# usage: check-artifact.sh DIR
# The one artifact in DIR is whole (`deployer verify`: manifest, every member's hash, the
# lock) and is of the commit being deployed; its release id has the one release id form.
# Nothing the manifest claims reaches $GITHUB_OUTPUT before it is checked.
#
#   COMMIT    the commit being deployed (40 hex): the manifest's git.sha must be exactly it
#   ORIGIN    when set, a line for the job summary: where the artifact came from
#   DEPLOYER  the deployer command (default: deployer)
# Writes file, path, release, version and name=release-<COMMIT> (the name it is kept
# under: the commit deployed, never the manifest's claim) to $GITHUB_OUTPUT.
set -euo pipefail

fail() {
  echo "::error::$2"
  exit "$1"
}

DIR=${1:?usage: check-artifact.sh DIR}
COMMIT=${COMMIT:-}
DEPLOYER=${DEPLOYER:-deployer}
RELEASE_ID='^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{7}$'
FILE_NAME='^[A-Za-z0-9_.+-]+\.tar$'

[[ $COMMIT =~ ^[0-9a-f]{40}$ ]] || fail 2 "COMMIT is not a commit sha"

mapfile -d '' -t found < <(find "$DIR" -maxdepth 1 -name '*.tar' -type f -print0)
if [ "${#found[@]}" -ne 1 ]; then
  fail 1 "expected one artifact (.tar) in $DIR/, found ${#found[@]}"
fi
path=${found[0]}
file=$(basename "$path")
[[ $file =~ $FILE_NAME ]] || fail 1 "artifact file name: letters, digits and . _ + - only"

manifest=$(mktemp)
trap 'rm -f "$manifest"' EXIT
"$DEPLOYER" --json verify "$path" > "$manifest" || fail 1 "$file: deployer verify failed"

release=$(jq -r '.release_id | strings' "$manifest")
# the whole value, not what $(...) leaves of it: no trailing newline slips past the pattern
if ! [[ $release =~ $RELEASE_ID ]] || ! jq -e --arg r "$release" '.release_id == $r' "$manifest" > /dev/null; then
  fail 1 "$file: the manifest's release_id is not of the form YYYYMMDDTHHMMSSZ-<7 hex>: refused"
fi
if ! jq -e --arg c "$COMMIT" '.git.sha == $c' "$manifest" > /dev/null; then
  fail 1 "$file: built from another commit than $COMMIT (its manifest says git.sha $(jq -r '.git.sha | strings | .[:40] | @json' "$manifest")): refused"
fi
version=$(jq -r '.version | strings' "$manifest")
[[ $version =~ ^[A-Za-z0-9.+!_-]{1,100}$ ]] || fail 1 "$file: the manifest's version is not a version: refused"

echo "$file: release $release, version $version, commit $COMMIT"
{
  echo "file=$file"
  echo "path=$path"
  echo "release=$release"
  echo "version=$version"
  echo "name=release-$COMMIT"
} >> "${GITHUB_OUTPUT:-/dev/stdout}"
if [ -n "${ORIGIN:-}" ] && [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  {
    echo "### artifact"
    echo "\`$file\` - release \`$release\`, version \`$version\`, commit \`$COMMIT\`, $ORIGIN"
  } >> "$GITHUB_STEP_SUMMARY"
fi
