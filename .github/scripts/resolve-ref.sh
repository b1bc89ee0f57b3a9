#!/usr/bin/env bash
# What to build and deploy, resolved ONCE to a commit sha; every later step uses that sha.
#
#   TAG      a tag name     -> refs/tags/<TAG>, never a branch of the same name
#   BRANCH   a branch name  -> origin's refs/heads/<BRANCH> (refs/remotes/origin/<BRANCH> in a
#                              checkout made with fetch-depth: 0)
#   neither                 -> GITHUB_SHA, the commit this run was started for
# A tag wins over a branch. When the run was started for that very ref (a tag push, a
# dispatch on that branch), GITHUB_SHA is the commit. Runs in a checkout holding every
# branch and tag of origin. Writes sha=<40 hex> and ref=<the full ref> to $GITHUB_OUTPUT.
# Exit 2: a name that is no ref name (or starts with '-'); exit 1: no such tag or branch.
set -euo pipefail

fail() {
  echo "::error::$2"
  exit "$1"
}

quoted() { printf '%q' "$1"; } # a refused name is shown escaped: no newline reaches the log

TAG=${TAG:-}
BRANCH=${BRANCH:-}
GITHUB_SHA=${GITHUB_SHA:-}
GITHUB_REF=${GITHUB_REF:-}

[[ $GITHUB_SHA =~ ^[0-9a-f]{40}$ ]] || fail 2 "GITHUB_SHA is not a commit sha"

# ref=refs/tags/<name> or refs/heads/<name>; exit 2 for what is no such ref name
qualify() {
  local kind=$1 name=$2
  case $kind in tag) ref="refs/tags/$name" ;; *) ref="refs/heads/$name" ;; esac
  if [[ $name == -* ]] || ! git check-ref-format "$ref"; then
    fail 2 "$kind $(quoted "$name"): not a $kind name"
  fi
}

if [ -n "$TAG" ]; then
  if [ -n "$BRANCH" ]; then
    echo "::notice::both a tag and a branch were given: the tag wins"
  fi
  qualify tag "$TAG"
  local_ref=$ref
elif [ -n "$BRANCH" ]; then
  qualify branch "$BRANCH"
  local_ref="refs/remotes/origin/$BRANCH"
else
  ref=$GITHUB_REF
  local_ref=""
fi

if [ -z "$local_ref" ] || [ "$ref" = "$GITHUB_REF" ]; then
  sha=$GITHUB_SHA # the run's own commit
elif ! sha=$(git rev-parse --verify --quiet --end-of-options "$local_ref^{commit}"); then
  fail 1 "${ref#refs/}: not found in this repository"
fi
[[ $sha =~ ^[0-9a-f]{40}$ ]] || fail 1 "${ref#refs/}: did not resolve to a commit"

echo "${ref:-the commit of this run}: $sha"
{
  echo "sha=$sha"
  echo "ref=$ref"
} >> "${GITHUB_OUTPUT:-/dev/stdout}"
