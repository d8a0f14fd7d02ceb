"""Print an addons path for Odoo 18: Odoo's own add-on folders, then the given folders."""

import os
import sys

import odoo

root = os.path.dirname(os.path.dirname(os.path.abspath(odoo.__file__)))
paths = [p for p in os.environ.get("ODOO_ADDONS_PATH", "").split(",") if p]
for candidate in (os.path.join(root, "odoo", "addons"), os.path.join(root, "addons")):
    if os.path.isdir(candidate) and candidate not in paths:
        paths.append(candidate)
paths.extend(os.path.abspath(p) for p in sys.argv[1:])
print(",".join(paths))
