"""Write the en/zh/ja message catalogs from messages.pot and the table of translations below.

Run after `pybabel extract -F babel.cfg -o src/civic/web/locale/messages.pot -k _ -k gettext .`;
a message without a translation here stays untranslated (shown in Korean) and is listed.
"""

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

LOCALE_DIR = Path(__file__).resolve().parents[1] / "src" / "civic" / "web" / "locale"

T: dict[str, tuple[str, str, str]] = {
    # Korean: (English, Chinese, Japanese)
    "Civic 스마트 공공서비스": ("Civic smart public services", "Civic 智慧公共服务", "Civic スマート公共サービス"),
    "본문으로 건너뛰기": ("Skip to content", "跳到正文", "本文へスキップ"),
    "주 메뉴": ("Main menu", "主菜单", "メインメニュー"),
    "홈": ("Home", "首页", "ホーム"),
    "감사 기록": ("Audit log", "审计记录", "監査ログ"),
    "언어": ("Language", "语言", "言語"),
    "로그아웃": ("Sign out", "退出", "ログアウト"),
    "오픈소스 스마트 공공서비스 플랫폼": (
        "open-source smart public service platform",
        "开源智慧公共服务平台",
        "オープンソースのスマート公共サービス基盤",
    ),
    "오류 코드": ("Error code", "错误代码", "エラーコード"),
    "요청 번호": ("Request id", "请求编号", "リクエスト番号"),
    "홈으로": ("Go home", "返回首页", "ホームへ"),
    "안녕하세요": ("Hello", "您好", "こんにちは"),
    "서비스": ("Services", "服务", "サービス"),
    "아직 사용할 수 있는 서비스가 없습니다. 관리자에게 역할을 요청하세요.": (
        "No services are open to you yet. Ask an administrator for a role.",
        "您还没有可用的服务。请向管理员申请角色。",
        "利用できるサービスはまだありません。管理者に役割を依頼してください。",
    ),
    "관리": ("Administration", "管理", "管理"),
    "누가 언제 어떤 개인정보를 보고 바꿨는지": (
        "Who saw or changed which personal data, and when",
        "谁在何时查看或更改了哪些个人信息",
        "誰がいつどの個人情報を見たり変えたりしたか",
    ),
    "OpenAPI 문서": ("OpenAPI documentation", "OpenAPI 文档", "OpenAPI ドキュメント"),
    "지도": ("Map", "地图", "地図"),
    "관할 지역 지도": ("Map of the jurisdiction", "辖区地图", "管轄区域の地図"),
    "로그인": ("Sign in", "登录", "ログイン"),
    "아이디": ("User name", "用户名", "ユーザー名"),
    "비밀번호": ("Password", "密码", "パスワード"),
    "아이디 또는 비밀번호가 맞지 않습니다.": (
        "The user name or password is not right.",
        "用户名或密码不正确。",
        "ユーザー名またはパスワードが正しくありません。",
    ),
    "로그인 시도가 너무 많습니다. {minutes}분 후에 다시 시도해 주세요.": (
        "Too many sign-in attempts. Please try again in {minutes} minutes.",
        "登录尝试次数过多。请在 {minutes} 分钟后重试。",
        "ログインの試行が多すぎます。{minutes} 分後にもう一度お試しください。",
    ),
    "개인정보 열람과 모든 변경은 지울 수 없는 기록으로 남습니다.": (
        "Every read of personal data and every change is kept in a log that cannot be erased.",
        "个人信息的每次查看和每次更改都会留下无法删除的记录。",
        "個人情報の閲覧とすべての変更は、消せない記録として残ります。",
    ),
    "사람 (아이디)": ("Person (user name)", "人员（用户名）", "人（ユーザー名）"),
    "대상 (종류 또는 종류:번호)": ("Subject (type or type:id)", "对象（类型或 类型:编号）", "対象（種類 または 種類:番号）"),
    "시작": ("From", "开始", "開始"),
    "끝": ("Until", "结束", "終了"),
    "찾기": ("Search", "查找", "検索"),
    "시각 (KST)": ("Time (KST)", "时间 (KST)", "時刻 (KST)"),
    "사람": ("Person", "人员", "人"),
    "행위": ("Action", "操作", "操作"),
    "대상": ("Subject", "对象", "対象"),
    "내용": ("Detail", "内容", "内容"),
    "주소": ("Address", "地址", "アドレス"),
    "조건에 맞는 기록이 없습니다.": ("No entries match.", "没有符合条件的记录。", "条件に合う記録はありません。"),
    "페이지": ("Pages", "页", "ページ"),
    "이전": ("Previous", "上一页", "前へ"),
    "다음": ("Next", "下一页", "次へ"),
}
LANGS = ("en", "zh", "ja")


def main() -> None:
    """Write one messages.po per language."""
    with (LOCALE_DIR / "messages.pot").open("rb") as file:
        template = read_po(file)
    for index, lang in enumerate(LANGS):
        catalog = Catalog(locale=lang, project="civic", fuzzy=False)
        for message in template:
            if not message.id:
                continue
            translated = T.get(message.id)
            catalog.add(message.id, translated[index] if translated else "")
            if translated is None:
                print(f"{lang}: untranslated: {message.id}")
        target = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as file:
            write_po(file, catalog, omit_header=False, sort_output=True, width=100)
        print(f"{lang}: {len(catalog)} messages -> {target.relative_to(LOCALE_DIR.parents[3])}")


if __name__ == "__main__":
    main()
