"""pytest plugin for the add-on's suite (loaded with ``-p pytest_no_skips``).

* A skipped test is a failure: Odoo skips browser tests with only a log line
  when websocket-client or Chromium is missing, and that must not pass.
* The test API token must appear in no log record emitted during the whole
  suite (every logger at the run's level, the add-on's own at DEBUG).
"""

import logging

# Same value as tests/common.py TOKEN.
SECRET = "tok-9f3c1d2e-secret-crux-token"  # noqa: S105


class _SecretWatcher(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.leaks = []

    def emit(self, record):
        try:
            text = record.getMessage()
        except Exception:  # a broken log call is not a leak
            return
        if record.exc_info and record.exc_info[1] is not None:
            text += repr(record.exc_info[1])
        if SECRET in text:
            self.leaks.append(f"{record.name}: {text[:200]}")


_watcher = _SecretWatcher()


def pytest_sessionstart(session):
    logging.getLogger().addHandler(_watcher)
    # Everything the add-on logs is watched, debug included; other loggers at
    # the level the run is configured for.
    logging.getLogger("odoo.addons.crux_tracking").setLevel(logging.DEBUG)


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if _watcher.leaks:
        if reporter:
            reporter.write_line(
                f"The API token appeared in {len(_watcher.leaks)} log record(s): "
                + "; ".join(_watcher.leaks[:3]),
                red=True,
            )
        session.exitstatus = 1
    if skipped and session.exitstatus == 0:
        if reporter:
            reporter.write_line(
                f"{len(skipped)} test(s) were skipped; this suite treats a skip as a failure.",
                red=True,
            )
        session.exitstatus = 1
    if reporter:
        reporter.write_line(
            f"secret watcher: token absent from all log records: {not _watcher.leaks}"
        )
