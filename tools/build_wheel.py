"""Build the add-on's wheel (whool, OCA style) and check what it contains.

whool names the wheel after the add-on's folder, so the tracked files are
copied into a folder named ``crux_tracking`` first, whatever this clone's name.
"""

import glob
import os
import shutil
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, ".build", "wheel")
SOURCE = os.path.join(WORK, "crux_tracking")
DIST = os.path.join(ROOT, ".build", "dist")
REQUIRED = [
    "__manifest__.py",
    "security/ir.model.access.csv",
    "data/ir_cron_data.xml",
    "data/neutralize.sql",
    "views/stock_picking_views.xml",
    "views/res_config_settings_views.xml",
    "crux/client.py",
]

shutil.rmtree(WORK, ignore_errors=True)
shutil.rmtree(DIST, ignore_errors=True)
files = subprocess.run(
    ["git", "ls-files", "--cached", "--others", "--exclude-standard"],  # noqa: S607
    cwd=ROOT,
    capture_output=True,
    text=True,
    check=True,
).stdout.split()
for name in files:
    if os.path.isfile(os.path.join(ROOT, name)):
        os.makedirs(os.path.dirname(os.path.join(SOURCE, name)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), os.path.join(SOURCE, name))
# whool lists the files to package with git: give the copy a repository of its own.
git = ["git", "-c", "user.name=build", "-c", "user.email=build@localhost"]
for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "wheel source"]):
    subprocess.run(git + args, cwd=SOURCE, check=True, capture_output=True)  # noqa: S603
subprocess.run(  # noqa: S603
    [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", DIST, SOURCE],
    check=True,
    capture_output=True,
)
wheels = glob.glob(os.path.join(DIST, "odoo_addon_crux_tracking-18.0.*.whl"))
if len(wheels) != 1:
    sys.exit(f"wheel: expected one odoo_addon_crux_tracking wheel, found {os.listdir(DIST)}")
names = set(zipfile.ZipFile(wheels[0]).namelist())
missing = [f for f in REQUIRED if f"odoo/addons/crux_tracking/{f}" not in names]
if missing:
    sys.exit(f"wheel: {os.path.basename(wheels[0])} lacks {missing}")
print(f"wheel: {os.path.basename(wheels[0])} built with {len(names)} files, views/data/security in")
