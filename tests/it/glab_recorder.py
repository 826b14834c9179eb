#!/usr/bin/env python3
"""`glab` for tests/it/examples.rs: GitLab's side of the GitLab CI example.

Records every call in $GH_STUB_DIR/glab-calls.log and keeps the merge
requests' notes in $GH_STUB_DIR/notes.json. It knows only the calls the
example makes (`glab api` on a merge request's notes); any other fails.
"""

import json
import os
import sys

STATE = os.environ["GH_STUB_DIR"]
NOTES = os.path.join(STATE, "notes.json")


def fail(message):
    print(f"glab (test recorder): {message}", file=sys.stderr)
    sys.exit(1)


def option(args, *names, default=None):
    for i, a in enumerate(args):
        if a in names and i + 1 < len(args):
            return args[i + 1]
    return default


def main():
    args = sys.argv[1:]
    with open(os.path.join(STATE, "glab-calls.log"), "a") as log:
        log.write(json.dumps(args) + "\n")
    if not os.environ.get("GITLAB_TOKEN"):
        fail("GITLAB_TOKEN is not set")
    if args[:1] != ["api"]:
        fail(f"unsupported command {args[:1]}")
    method = option(args, "--method", "-X", default="GET")
    path = next(a for a in args[1:] if a.startswith("projects/"))
    parts = path.split("/")  # projects ID merge_requests IID notes [NOTE]
    if parts[2:3] != ["merge_requests"] or parts[4:5] != ["notes"]:
        fail(f"unsupported api path {path}")
    notes = json.load(open(NOTES)) if os.path.exists(NOTES) else []
    body = None
    field = option(args, "-F", "--field", "-f", "--raw-field")
    if field is not None:
        key, _, value = field.partition("=")
        if key != "body":
            fail(f"unexpected field {key}")
        body = open(value[1:]).read() if value.startswith("@") else value
    mr = int(parts[3])
    if method == "GET" and len(parts) == 5:
        print(json.dumps([n for n in notes if n["mr"] == mr]))
    elif method == "POST" and len(parts) == 5:
        note = {"id": 2000 + len(notes), "mr": mr, "body": body}
        notes.append(note)
        print(json.dumps(note))
    elif method == "PUT" and len(parts) == 6:
        note = next((n for n in notes if n["id"] == int(parts[5]) and n["mr"] == mr), None)
        if note is None:
            fail(f"no note {parts[5]}")
        note["body"] = body
        print(json.dumps(note))
    else:
        fail(f"unsupported api call {method} {path}")
    with open(NOTES, "w") as f:
        json.dump(notes, f, indent=1)


main()
