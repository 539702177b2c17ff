import pytest
from typer.testing import CliRunner

from civic.cli import app
from civic.demo import DEMO_PASSWORD


@pytest.fixture
def runner(tmp_path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CIVIC_DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("CIVIC_LOG_JSON", "false")
    return CliRunner()


def test_upgrade_demo_users_and_tokens(runner: CliRunner) -> None:
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert "최신입니다" in runner.invoke(app, ["db", "current"]).output

    demo = runner.invoke(app, ["demo", "load"])
    assert demo.exit_code == 0, demo.output
    assert (
        "새 계정 7개" in demo.output
        and DEMO_PASSWORD in demo.output
        and "dispatcher" in demo.output
    )
    assert (
        "새 계정 0개" in runner.invoke(app, ["demo", "load"]).output
    )  # loading twice adds nothing

    created = runner.invoke(
        app,
        [
            "users",
            "create",
            "--organisation",
            "gn-fire",
            "--username",
            "hydrant-gw-1",
            "--display-name",
            "소화전 게이트웨이",
            "--role",
            "hydrants:operator",
            "--device",
        ],
    )
    assert created.exit_code == 0, created.output
    token = runner.invoke(app, ["users", "token", "hydrant-gw-1", "--name", "MQTT bridge"])
    assert token.exit_code == 0 and "civ_" in token.output

    person = runner.invoke(
        app,
        [
            "users",
            "create",
            "--organisation",
            "gn-fire",
            "--username",
            "kim",
            "--display-name",
            "김소방",
            "--role",
            "smart119:dispatcher",
        ],
        input="s3cret-pass\ns3cret-pass\n",
    )
    assert person.exit_code == 0, person.output


def test_bad_input_gets_a_message_not_a_traceback(runner: CliRunner) -> None:
    runner.invoke(app, ["db", "upgrade"])
    runner.invoke(app, ["demo", "load"])
    wrong_role = runner.invoke(
        app,
        [
            "users",
            "create",
            "--organisation",
            "gn-fire",
            "--username",
            "x",
            "--display-name",
            "x",
            "--role",
            "smart119:captain",
            "--device",
        ],
    )
    assert wrong_role.exit_code == 2 and "captain" in wrong_role.output
    no_org = runner.invoke(
        app,
        [
            "users",
            "create",
            "--organisation",
            "nowhere",
            "--username",
            "x",
            "--display-name",
            "x",
            "--role",
            "smart119:crew",
            "--device",
        ],
    )
    assert no_org.exit_code == 2 and "nowhere" in no_org.output
    taken = runner.invoke(
        app,
        [
            "users",
            "create",
            "--organisation",
            "gn-fire",
            "--username",
            "admin",
            "--display-name",
            "x",
            "--role",
            "*:admin",
            "--device",
        ],
    )
    assert taken.exit_code == 2 and "이미" in taken.output
    assert runner.invoke(app, ["users", "token", "ghost", "--name", "x"]).exit_code == 2


def test_production_refuses_demo_data_and_default_secrets(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIVIC_ENV", "production")
    refused = runner.invoke(app, ["demo", "load"])
    assert refused.exit_code == 2 and "SECRET_KEY" in refused.output
    monkeypatch.setenv("CIVIC_SECURITY__SECRET_KEY", "z" * 40)
    runner.invoke(app, ["db", "upgrade"])
    refused = runner.invoke(app, ["demo", "load"])
    assert refused.exit_code == 2 and "production" in refused.output
