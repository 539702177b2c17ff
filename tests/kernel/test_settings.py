import pytest
from pydantic import ValidationError

from civic.kernel.settings import DEVELOPMENT_SECRET, KernelSettings
from civic.settings import Settings


def test_every_field_is_described() -> None:
    def walk(model: type) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            if not field.description:
                annotation = field.annotation
                if not (isinstance(annotation, type) and hasattr(annotation, "model_fields")):
                    missing.append(name)
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                missing += [f"{name}.{sub}" for sub in walk(annotation)]
        return missing

    assert walk(Settings) == []


def test_production_refuses_the_development_secret() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(env="production")
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(env="production", security={"secret_key": "short"})
    ok = Settings(env="production", security={"secret_key": "p" * 40})
    assert ok.security.secret_key.get_secret_value() != DEVELOPMENT_SECRET


def test_environment_variables_reach_nested_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVIC_DATABASE__URL", "postgresql+asyncpg://civic@db/civic")
    monkeypatch.setenv("CIVIC_WEB__PORT", "9000")
    settings = Settings()
    assert settings.database.url == "postgresql+asyncpg://civic@db/civic"
    assert settings.web.port == 9000
    assert not settings.is_sqlite


def test_toml_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "civic.toml").write_text("[web]\nport = 8123\n[services.smart119]\nwaves = 3\n")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.web.port == 8123
    assert settings.services == {"smart119": {"waves": 3}}


def test_bad_values_are_refused_with_the_field_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVIC_WEB__PORT", "not-a-port")
    with pytest.raises(ValidationError, match="port"):
        KernelSettings()
