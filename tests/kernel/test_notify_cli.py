"""`civic notify send`: one message through the configured channels, from the command line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from civic.cli import app
from tests.kernel.notify_servers import free_port


@pytest.fixture
def runner(tmp_path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CIVIC_DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("CIVIC_LOG_JSON", "false")
    cli = CliRunner()
    assert cli.invoke(app, ["db", "upgrade"]).exit_code == 0
    return cli


def test_send_reaches_the_dev_inbox(runner: CliRunner) -> None:
    sent = runner.invoke(
        app, ["notify", "send", "--phone", "010-2222-3333", "--text", "시험 문자", "--emergency"]
    )
    assert sent.exit_code == 0, sent.output
    assert "sms" in sent.output and "dev_inbox" in sent.output and "sent" in sent.output


def test_send_reports_a_gateway_that_does_not_answer(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIVIC_NOTIFY__SMS__GATEWAY_URL", f"http://127.0.0.1:{free_port()}/sms")
    failed = runner.invoke(
        app, ["notify", "send", "--phone", "01022223333", "--text", "x", "--channel", "sms"]
    )
    assert failed.exit_code == 1
    assert "http_sms" in failed.output and "queued" in failed.output
    assert "unreachable" in failed.output


def test_send_refuses_bad_input(runner: CliRunner) -> None:
    nobody = runner.invoke(app, ["notify", "send", "--text", "x"])
    assert nobody.exit_code == 2 and "user_id, a phone or an e-mail" in nobody.output
    ghost = runner.invoke(app, ["notify", "send", "--user", "ghost", "--text", "x"])
    assert ghost.exit_code == 2 and "ghost" in ghost.output
