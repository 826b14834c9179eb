#!/usr/bin/env python3
"""`gh` for tests/it/examples.rs: GitHub's side of the example workflows.

Records every call in $GH_STUB_DIR/calls.log and keeps what GitHub would
keep under $GH_STUB_DIR: the pull request's comments (comments.json), the
workflow runs (runs.json, written by the test) and their artifacts
(artifacts/RUN/NAME/). It knows only the calls the examples make; any other
call fails, so an example cannot use an untested one. `--jq` goes to jq, as
gh's own built-in jq would.
"""

import json
import os
import shutil
import subprocess
import sys

STATE = os.environ["GH_STUB_DIR"]


def load(name, default):
    try:
        with open(os.path.join(STATE, name)) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def save(name, value):
    with open(os.path.join(STATE, name), "w") as f:
        json.dump(value, f, indent=1)


def option(args, *names, default=None):
    for i, a in enumerate(args):
        if a in names and i + 1 < len(args):
            return args[i + 1]
    return default


def out(value, jq):
    text = json.dumps(value)
    if jq is None:
        print(text)
        return
    result = subprocess.run(["jq", "-r", jq], input=text, capture_output=True, text=True)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.exit(result.returncode)


def fail(message):
    print(f"gh (test recorder): {message}", file=sys.stderr)
    sys.exit(1)


def api(args):
    method = option(args, "--method", "-X", default="GET")
    path = next(a for a in args[1:] if a.startswith("repos/"))
    jq = option(args, "--jq", "-q")
    parts = path.split("/")  # repos OWNER REPO issues ...
    comments = load("comments.json", [])
    body = None
    field = option(args, "-F", "--field", "-f", "--raw-field")
    if field is not None:
        key, _, value = field.partition("=")
        if key != "body":
            fail(f"unexpected field {key}")
        if value.startswith("@"):
            with open(value[1:]) as f:
                value = f.read()
        body = value
    if parts[3:4] == ["issues"] and parts[5:] == ["comments"] and method == "GET":
        return out([c for c in comments if c["issue"] == int(parts[4])], jq)
    if parts[3:4] == ["issues"] and parts[5:] == ["comments"] and method == "POST":
        comment = {"id": 1000 + len(comments), "issue": int(parts[4]), "body": body}
        comments.append(comment)
        save("comments.json", comments)
        return out(comment, jq)
    if parts[3:5] == ["issues", "comments"] and method == "PATCH":
        for c in comments:
            if c["id"] == int(parts[5]):
                c["body"] = body
                save("comments.json", comments)
                return out(c, jq)
        fail(f"no comment {parts[5]}")
    fail(f"unsupported api call {method} {path}")


def run(args):
    if args[1] == "list":
        runs = load("runs.json", [])
        workflow = option(args, "--workflow", "-w")
        commit = option(args, "--commit", "-c")
        branch = option(args, "--branch", "-b")
        event = option(args, "--event", "-e")
        status = option(args, "--status", "-s")
        found = [
            r
            for r in reversed(runs)
            if (workflow is None or r["workflow"] == workflow)
            and (commit is None or r["headSha"] == commit)
            and (branch is None or r["headBranch"] == branch)
            and (event is None or r["event"] == event)
            and (status is None or r["conclusion"] == status)
        ][: int(option(args, "--limit", "-L", default="20"))]
        return out([{"databaseId": r["databaseId"]} for r in found], option(args, "--jq", "-q"))
    if args[1] == "download":
        run_id, name = args[2], option(args, "--name", "-n")
        target = option(args, "--dir", "-D", default=".")
        source = os.path.join(STATE, "artifacts", run_id, name)
        if not os.path.isdir(source):
            fail(f"no artifact {name} in run {run_id}")
        shutil.copytree(source, target, dirs_exist_ok=True)
        return None
    fail(f"unsupported run call {args[1]}")


def main():
    args = sys.argv[1:]
    with open(os.path.join(STATE, "calls.log"), "a") as log:
        log.write(json.dumps(args) + "\n")
    if not os.environ.get("GH_TOKEN"):
        fail("GH_TOKEN is not set")
    if args[:1] == ["api"]:
        api(args)
    elif args[:1] == ["run"]:
        run(args)
    else:
        fail(f"unsupported command {args[:1]}")


main()
