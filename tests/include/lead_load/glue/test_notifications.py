"""Who hears about a failed run: chosen by LEAD_LOAD_ALERT_EMAILS when the DAG is parsed."""

from __future__ import annotations

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from lead_load.glue.notifications import failure_notifiers


def test_no_addresses_no_notifier(monkeypatch):
    monkeypatch.delenv("LEAD_LOAD_ALERT_EMAILS", raising=False)
    assert failure_notifiers() == []


def test_addresses_give_one_mail_to_all_of_them(monkeypatch):
    monkeypatch.setenv("LEAD_LOAD_ALERT_EMAILS", "ops@example.cn, data@example.cn")
    (notifier,) = failure_notifiers()
    assert isinstance(notifier, SmtpNotifier)
    assert list(notifier.to) == ["ops@example.cn", "data@example.cn"]
    assert "{{ dag_run.run_id }}" in notifier.subject
