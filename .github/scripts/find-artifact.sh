#!/usr/bin/env bash
# Which artifact to deploy: only one this repository's own, trusted runs made, never one a
# fork's pull request or another workflow uploaded under the same name.
#
#   ARTIFACT_ID    an earlier run's artifact (a hotfix): named release-<sha> by a push or
#                  dispatch run of deploy, deploy-staging or manual-deploy of this repository
#   ARTIFACT_NAME  an artifact uploaded earlier in THIS run
#   PROMOTE=true   release-<SHA>, as deploy.yml made it on a push to main of this repository
#                  for that very commit, while it is kept; otherwise the commit is built
#   SHA            the commit being deployed (resolve-ref.sh)
#   TAG, BRANCH    only to refuse them next to ARTIFACT_ID
#   GITHUB_API_URL, GITHUB_REPOSITORY, GITHUB_RUN_ID, GITHUB_TOKEN (or GH_TOKEN): as on a runner
# Writes to $GITHUB_OUTPUT: source=build, or source=download with id, name, run-id and
# same-run; and commit=<40 hex>, the commit the artifact must be of (its manifest is checked
# against it, and it is kept as release-<commit>). Exit 2: bad input; 1: refused or not found.
set -euo pipefail

fail() {
  echo "::error::$2"
  exit "$1"
}

ARTIFACT_ID=${ARTIFACT_ID:-}
ARTIFACT_NAME=${ARTIFACT_NAME:-}
PROMOTE=${PROMOTE:-false}
SHA=${SHA:-}
TAG=${TAG:-}
BRANCH=${BRANCH:-}
REPO=${GITHUB_REPOSITORY:-}
RUN_ID=${GITHUB_RUN_ID:-}
TOKEN=${GITHUB_TOKEN:-${GH_TOKEN:-}}
API=${GITHUB_API_URL:-https://api.github.com}
DEPLOY_WORKFLOW=.github/workflows/deploy.yml
# the workflows whose runs keep an artifact as release-<sha> (this repository's and `deployer init`'s)
KEEPERS='[".github/workflows/deploy.yml", ".github/workflows/deploy-staging.yml", ".github/workflows/manual-deploy.yml"]'

[[ $SHA =~ ^[0-9a-f]{40}$ ]] || fail 2 "SHA is not a commit sha"
[[ $REPO =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || fail 2 "GITHUB_REPOSITORY is not owner/name"
[[ $RUN_ID =~ ^[0-9]+$ ]] || fail 2 "GITHUB_RUN_ID is not a run id"
[ -n "$TOKEN" ] || fail 2 "GITHUB_TOKEN is not set"
if [ -n "$ARTIFACT_ID" ] && [ -n "$TAG$BRANCH$ARTIFACT_NAME" ]; then
  fail 2 "give an artifact id OR a tag/branch, not both"
fi

# GET $API/<path> as JSON; the token goes in a header read from stdin, never on a command line
api() {
  curl --silent --show-error --fail --max-time 30 --config - "$API/$1" <<CONFIG
header = "Authorization: Bearer $TOKEN"
header = "Accept: application/vnd.github+json"
header = "X-GitHub-Api-Version: 2022-11-28"
CONFIG
}

# the run's facts, when it ran in this repository (not a fork) - else nothing
run_of() {
  api "repos/$REPO/actions/runs/$1" |
    jq -c --arg repo "$REPO" 'select(.head_repository.full_name == $repo and .repository.full_name == $repo)'
}

found() { # id name run-id commit
  echo "artifact $1 ($2) of run $3, commit $4"
  {
    echo "source=download"
    echo "id=$1"
    echo "name=$2"
    echo "run-id=$3"
    echo "same-run=$([ "$3" = "$RUN_ID" ] && echo true || echo false)"
    echo "commit=$4"
  } >> "${GITHUB_OUTPUT:-/dev/stdout}"
  exit 0
}

build() {
  {
    echo "source=build"
    echo "commit=$SHA"
  } >> "${GITHUB_OUTPUT:-/dev/stdout}"
  exit 0
}

fields='[.id, .name, .expired, .workflow_run.id] | @tsv'
# the run that uploaded it ran in this repository: not a fork's pull request
same_repo='(.workflow_run.repository_id | type) == "number"
  and .workflow_run.head_repository_id == .workflow_run.repository_id'

if [ -n "$ARTIFACT_ID" ]; then
  [[ $ARTIFACT_ID =~ ^[0-9]+$ ]] || fail 2 "artifact id: a number (the end of the artifact's link)"
  if ! meta=$(api "repos/$REPO/actions/artifacts/$ARTIFACT_ID"); then
    fail 1 "artifact $ARTIFACT_ID: not found in $REPO (wrong id, or deleted)"
  fi
  IFS=$'\t' read -r id name expired run_id < <(jq -r "$fields" <<< "$meta") || true
  [[ $run_id =~ ^[0-9]+$ ]] || fail 1 "artifact $ARTIFACT_ID: no run recorded"
  if ! jq -e "$same_repo" <<< "$meta" > /dev/null; then
    fail 1 "artifact $ARTIFACT_ID was made by run $run_id of a fork: refused"
  fi
  [[ $name =~ ^release-([0-9a-f]{40})$ ]] || fail 1 "artifact $ARTIFACT_ID: not a release-<sha> artifact: refused"
  commit=${BASH_REMATCH[1]}
  run=$(run_of "$run_id") || fail 1 "artifact $ARTIFACT_ID: run $run_id cannot be read"
  if [ -z "$run" ] || ! jq -e --argjson keepers "$KEEPERS" \
    '(.path as $p | any($keepers[]; . == $p)) and (.event == "push" or .event == "workflow_dispatch")' \
    <<< "$run" > /dev/null; then
    fail 1 "artifact $ARTIFACT_ID was not kept by a push or dispatch run of this repository's deploy workflows: refused"
  fi
  if [ "$expired" = true ]; then
    fail 1 "artifact $id ($name, run $run_id) has EXPIRED: it was kept for the retention days it was uploaded with. Deploy by tag or branch instead; that builds it again."
  fi
  found "$id" "$name" "$run_id" "$commit"
fi

if [ -n "$ARTIFACT_NAME" ]; then
  [[ $ARTIFACT_NAME =~ ^[A-Za-z0-9._-]+$ ]] || fail 2 "artifact name: letters, digits, . _ - only"
  listed=$(api "repos/$REPO/actions/runs/$RUN_ID/artifacts?name=$ARTIFACT_NAME") ||
    fail 1 "artifacts of run $RUN_ID cannot be listed"
  meta=$(jq -r --arg name "$ARTIFACT_NAME" \
    "[.artifacts[] | select(.name == \$name)] | first // empty | $fields" <<< "$listed")
  [ -n "$meta" ] || fail 1 "artifact $ARTIFACT_NAME: not uploaded in this run"
  IFS=$'\t' read -r id name expired run_id <<< "$meta"
  [ "$run_id" = "$RUN_ID" ] || fail 1 "artifact $ARTIFACT_NAME: not of this run"
  found "$id" "$name" "$run_id" "$SHA"
fi

[ "$PROMOTE" = true ] || build

# promote: release-<SHA> of deploy.yml on a push to main of this repository, for SHA
wanted="release-$SHA"
listed=$(api "repos/$REPO/actions/artifacts?name=$wanted&per_page=100") ||
  fail 1 "artifacts named $wanted cannot be listed"
expired_seen="" refused=()
while IFS=$'\t' read -r id name expired run_id plausible; do
  [ -n "$id" ] || continue
  if [ "$plausible" = true ] && run=$(run_of "$run_id") && [ -n "$run" ] &&
    jq -e --arg path "$DEPLOY_WORKFLOW" --arg sha "$SHA" \
      '.path == $path and .event == "push" and .head_branch == "main" and .head_sha == $sha' \
      <<< "$run" > /dev/null; then
    if [ "$expired" = true ]; then
      expired_seen="$id"
      continue
    fi
    found "$id" "$name" "$run_id" "$SHA"
  fi
  refused+=("$id (run $run_id)")
done < <(jq -r --arg name "$wanted" --arg sha "$SHA" ".artifacts[] | select(.name == \$name)
  | [.id, .name, .expired, .workflow_run.id,
     ($same_repo and .workflow_run.head_branch == \"main\" and .workflow_run.head_sha == \$sha)] | @tsv" <<< "$listed")

if [ "${#refused[@]}" -gt 0 ]; then
  echo "::warning::refused ${#refused[@]} artifact(s) named $wanted not made by $DEPLOY_WORKFLOW on a push to main of $REPO: ${refused[*]}"
fi
if [ -n "$expired_seen" ]; then
  echo "::warning::the artifact $wanted main built for this commit has EXPIRED; building it again"
else
  echo "no artifact $wanted of main's deploy for this commit is kept: building it"
fi
build
