"""Notification templates: channels, languages, SMS length, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from civic.kernel.notify import NotifyTemplateError, TemplateCatalog
from civic.kernel.notify.templates import euc_kr_bytes, linkify

ALARM_KO = """
{% block title %}[화재 경보] {{ building }}{% endblock %}
{% block text %}
{{ building }} {{ floor }}층 감지기 작동. 확인 후 응답하세요: {{ link }}
{% endblock %}
{% block sms %}[경보] {{ building }} {{ floor }}층 {{ link }}{% endblock %}
{% block push %}{{ floor }}층 감지기 작동{% endblock %}
{% block link %}{{ link }}{% endblock %}
"""
ALARM_EN = """
{% block title %}[Fire alarm] {{ building }}{% endblock %}
{% block text %}
Detector on floor {{ floor }} of {{ building }}. Acknowledge: {{ link }}
{% endblock %}
"""
CONTEXT = {"building": "목동 센트럴", "floor": 7, "link": "https://civic.example.kr/a/1"}


@pytest.fixture
def catalog() -> TemplateCatalog:
    templates = TemplateCatalog()
    templates.add("alarm.ko.j2", ALARM_KO)
    templates.add("alarm.en.j2", ALARM_EN)
    return templates


def test_each_channel_gets_its_own_block(catalog: TemplateCatalog) -> None:
    sms = catalog.render("alarm", channel="sms", language="ko", context=CONTEXT)
    assert sms.body == "[경보] 목동 센트럴 7층 https://civic.example.kr/a/1"
    assert sms.meta["sms_type"] == "SMS" and sms.meta["bytes"] == euc_kr_bytes(sms.body) <= 90
    push = catalog.render("alarm", channel="push", language="ko", context=CONTEXT)
    assert (push.title, push.body, push.link) == (
        "[화재 경보] 목동 센트럴",
        "7층 감지기 작동",
        "https://civic.example.kr/a/1",
    )
    mail = catalog.render("alarm", channel="email", language="ko", context=CONTEXT)
    assert mail.body.startswith("목동 센트럴 7층 감지기 작동")
    assert mail.html is not None
    assert '<a href="https://civic.example.kr/a/1">' in mail.html


def test_the_recipients_language_then_korean(catalog: TemplateCatalog) -> None:
    english = catalog.render("alarm", channel="sms", language="en", context=CONTEXT)
    assert english.body.startswith("Detector on floor 7") and english.meta["language"] == "en"
    japanese = catalog.render("alarm", channel="push", language="ja", context=CONTEXT)
    assert japanese.title == "[화재 경보] 목동 센트럴" and japanese.meta["language"] == "ko"


def test_long_sms_becomes_lms_and_too_long_is_refused(catalog: TemplateCatalog) -> None:
    catalog.add(
        "notice.ko.j2",
        "{% block title %}{{ t }}{% endblock %}{% block text %}{{ x }}{% endblock %}",
    )
    long = catalog.render(
        "notice", channel="sms", language="ko", context={"t": "단수 안내", "x": "가" * 46}
    )
    assert (long.meta["sms_type"], long.meta["bytes"]) == ("LMS", 92)
    assert long.title == "단수 안내"
    with pytest.raises(NotifyTemplateError, match="2000"):
        catalog.render("notice", channel="sms", language="ko", context={"t": "", "x": "가" * 1001})


def test_errors_name_the_template_and_the_cause(catalog: TemplateCatalog) -> None:
    with pytest.raises(NotifyTemplateError, match=r"'nothing\.ko\.j2'"):
        catalog.render("nothing", channel="sms", language="ko", context={})
    with pytest.raises(NotifyTemplateError, match=r"alarm\.ko\.j2.*'floor' is undefined"):
        catalog.render("alarm", channel="sms", language="ko", context={"building": "x", "link": ""})
    catalog.add("broken.ko.j2", "{% block text %}{{ oops {% endblock %}")
    with pytest.raises(NotifyTemplateError, match=r"broken\.ko\.j2.*1행"):
        catalog.render("broken", channel="sms", language="ko", context={})
    catalog.add("untitled.ko.j2", "{% block title %}제목{% endblock %}")
    with pytest.raises(NotifyTemplateError, match="text"):
        catalog.render("untitled", channel="push", language="ko", context={})
    with pytest.raises(NotifyTemplateError, match="이름"):
        catalog.render("../../etc/passwd", channel="sms", language="ko", context={})


def test_a_service_adds_a_folder_with_an_html_email(tmp_path: Path) -> None:
    (tmp_path / "receipt.ko.j2").write_text(
        "{% block title %}접수 완료{% endblock %}"
        "{% block text %}{{ name }}님, 접수되었습니다.{% endblock %}"
    )
    (tmp_path / "receipt.ko.html.j2").write_text("<p>{{ name }}님, <b>접수</b>되었습니다.</p>")
    catalog = TemplateCatalog()
    catalog.add_folder(tmp_path)
    mail = catalog.render("receipt", channel="email", language=None, context={"name": "<김>"})
    assert mail.html == "<p>&lt;김&gt;님, <b>접수</b>되었습니다.</p>"
    assert mail.body == "<김>님, 접수되었습니다." and mail.title == "접수 완료"
    assert catalog.has("receipt") and not catalog.has("absent")


def test_linkify_escapes_and_links() -> None:
    html = str(linkify("<b>보기</b> https://x.kr/a?b=1&c=2.\n끝"))
    assert html == (
        '&lt;b&gt;보기&lt;/b&gt; <a href="https://x.kr/a?b=1&amp;c=2">https://x.kr/a?b=1&amp;c=2</a>'
        ".<br>\n끝"
    )
