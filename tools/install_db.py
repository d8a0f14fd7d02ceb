"""Create a throw-away database with the add-on installed; fail on any error or on a
warning that comes from the add-on, so an install that "works with warnings" is caught."""

import argparse
import re
import subprocess
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--db", required=True)
parser.add_argument("--addons-path", required=True)
parser.add_argument("--modules", required=True)
parser.add_argument("--log", default=None, help="also write the install log here")
args = parser.parse_args()

cmd = [
    sys.executable,
    "-m",
    "odoo",
    "-d",
    args.db,
    "--addons-path",
    args.addons_path,
    "-i",
    args.modules,
    "--without-demo=all",
    "--stop-after-init",
    "--log-level=warn",
    "--max-cron-threads=0",
    "--db_host",
    "127.0.0.1",
]
print("install:", " ".join(cmd[1:]), flush=True)
proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
log = proc.stdout + proc.stderr
if args.log:
    with open(args.log, "w") as handle:
        handle.write(log)
bad = [
    line
    for line in log.splitlines()
    if re.search(r" (ERROR|CRITICAL) ", line)
    # The database name is on every line: look for the module in the rest.
    or (re.search(r" WARNING ", line) and "crux_tracking" in line.replace(args.db, ""))
]
if proc.returncode or bad:
    sys.stderr.write(log[-6000:] if not bad else "\n".join(bad) + "\n")
    sys.exit(f"install: failed (exit {proc.returncode}, {len(bad)} error/warning line(s))")
print(f"install: database {args.db} ready with {args.modules}")
