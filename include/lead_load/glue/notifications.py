"""Who hears about a failed run: Airflow's own notifiers, chosen by environment variables.

- ``LEAD_LOAD_ALERT_EMAILS`` (comma-separated): an ``SmtpNotifier`` through the
  ``smtp_default`` connection (host, port, login/password of your mail server).
- Slack: install ``apache-airflow-providers-slack`` and add its ``SlackNotifier`` here.

Read from the environment (no I/O), so DAG parsing stays fast.
"""

from __future__ import annotations

from lead_load.glue.settings_catalog import alert_emails


def failure_notifiers() -> list:
    notifiers: list = []
    emails = alert_emails()
    if emails:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        notifiers.append(
            SmtpNotifier(
                to=emails,
                subject="[lead_load] run {{ dag_run.run_id }} failed",
                html_content=(
                    "Run {{ dag_run.run_id }} of {{ dag.dag_id }} failed at task "
                    "{{ ti.task_id }}. Open the run in the Airflow UI for the log and summary."
                ),
            )
        )
    return notifiers
