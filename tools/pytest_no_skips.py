"""pytest hooks for the add-on's suite: a skipped test is a failure here.

Odoo skips browser tests with only a log line when websocket-client or Chromium
is missing; the suite must not report that as a pass.
"""


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and exitstatus == 0:
        reporter.write_line(
            f"{len(skipped)} test(s) were skipped; this suite treats a skip as a failure.",
            red=True,
        )
        session.exitstatus = 1
