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
    "Civic 스마트 공공서비스": (
        "Civic smart public services",
        "Civic 智慧公共服务",
        "Civic スマート公共サービス",
    ),
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
    "대상 (종류 또는 종류:번호)": (
        "Subject (type or type:id)",
        "对象（类型或 类型:编号）",
        "対象（種類 または 種類:番号）",
    ),
    "시작": ("From", "开始", "開始"),
    "끝": ("Until", "结束", "終了"),
    "찾기": ("Search", "查找", "検索"),
    "시각 (KST)": ("Time (KST)", "时间 (KST)", "時刻 (KST)"),
    "사람": ("Person", "人员", "人"),
    "행위": ("Action", "操作", "操作"),
    "대상": ("Subject", "对象", "対象"),
    "내용": ("Detail", "内容", "内容"),
    "주소": ("Address", "地址", "アドレス"),
    "조건에 맞는 기록이 없습니다.": (
        "No entries match.",
        "没有符合条件的记录。",
        "条件に合う記録はありません。",
    ),
    "페이지": ("Pages", "页", "ページ"),
    "이전": ("Previous", "上一页", "前へ"),
    "다음": ("Next", "下一页", "次へ"),
    # The event bus admin page (admin/events.html) and its home tile.
    "이벤트 전달": ("Event delivery", "事件投递", "イベント配信"),
    "처리하지 못한 이벤트를 살피고 다시 보내기": (
        "Inspect events that could not be handled, and send them again",
        "查看未能处理的事件并重新发送",
        "処理できなかったイベントを確認して再送する",
    ),
    "구독자가 재시도 끝에 처리하지 못한 이벤트입니다. 원인을 고친 뒤 다시 보낼 수 있습니다.": (
        "Events a subscriber could not handle after every retry. Fix the cause, then send them "
        "again.",
        "这些是订阅者多次重试后仍未能处理的事件。修复原因后可以重新发送。",
        "購読者が再試行しても処理できなかったイベントです。原因を直してから再送できます。",
    ),
    "다시 보낸 이벤트가 처리되었습니다.": (
        "The event sent again was handled.",
        "重新发送的事件已处理。",
        "再送したイベントは処理されました。",
    ),
    "다시 보냈지만 또 실패했습니다. 새로 생긴 기록을 확인하세요.": (
        "It was sent again but failed again. See the new entry.",
        "已重新发送，但再次失败。请查看新记录。",
        "再送しましたが、また失敗しました。新しい記録を確認してください。",
    ),
    "전달 대기": ("Waiting for delivery", "等待投递", "配信待ち"),
    "전달을 기다리는 이벤트": (
        "Events waiting for delivery",
        "等待投递的事件",
        "配信待ちのイベント",
    ),
    "가장 오래 기다린 이벤트": ("Longest wait", "等待最久的事件", "最も長く待っているイベント"),
    "기다리는 이벤트 없음": ("None waiting", "没有等待的事件", "待っているイベントなし"),
    "실패한 이벤트": ("Failed events", "失败的事件", "失敗したイベント"),
    "구독자": ("Subscriber", "订阅者", "購読者"),
    "이벤트": ("Event", "事件", "イベント"),
    "오류 내용": ("Error", "错误内容", "エラー内容"),
    "시도 횟수": ("Attempts", "尝试次数", "試行回数"),
    "내용 보기": ("Show", "查看内容", "内容を見る"),
    "다시 보내기": ("Send again", "重新发送", "再送"),
    "다시 보냄": ("Sent again", "已重新发送", "再送済み"),
    "실패한 이벤트가 없습니다.": (
        "No failed events.",
        "没有失败的事件。",
        "失敗したイベントはありません。",
    ),
    # Tracking: the live map.
    "실시간 위치": ("Live positions", "实时位置", "リアルタイム位置"),
    "실시간 위치 지도": ("Live position map", "实时位置地图", "リアルタイム位置地図"),
    "보일 대상": ("Show", "显示对象", "表示する対象"),
    "개인 위치, 열람 기록": (
        "a person's location; viewing is logged",
        "个人位置，查看会被记录",
        "個人の位置。閲覧は記録されます",
    ),
    "보기": ("Show", "查看", "表示"),
    "불러오는 중…": ("Loading…", "加载中…", "読み込み中…"),
    "대상 목록": ("Tracked subjects", "对象列表", "対象一覧"),
    "이름": ("Name", "名称", "名前"),
    "종류": ("Kind", "类型", "種類"),
    "마지막 위치 시각": ("Last position at", "最后位置时间", "最終位置の時刻"),
    "신호": ("Signal", "信号", "信号"),
    "수신 중": ("Receiving", "接收中", "受信中"),
    "신호 끊김": ("Signal lost", "信号中断", "信号途絶"),
    "대상 {count}개 · 실시간 갱신": (
        "{count} subjects · live",
        "{count} 个对象 · 实时更新",
        "対象 {count} 件 · リアルタイム更新",
    ),
    "위치를 불러오지 못했습니다.": (
        "Positions could not be loaded.",
        "无法加载位置。",
        "位置を読み込めませんでした。",
    ),
    "소방 차량": ("Fire engines", "消防车", "消防車両"),
    "구급차": ("Ambulances", "救护车", "救急車"),
    "차량": ("Vehicles", "车辆", "車両"),
    "드론": ("Drones", "无人机", "ドローン"),
    "협력자": ("Collaborators", "协作人员", "協力者"),
    "스마트워치": ("Smartwatches", "智能手表", "スマートウォッチ"),
    "전자발찌": ("Electronic ankle monitors", "电子脚镣", "電子足輪"),
}
# Kernel modules: notifications, incidents, live updates.
T.update(
    {
        "개발용 받은편지함": ("Development inbox", "开发收件箱", "開発用受信箱"),
        "게이트웨이가 설정되지 않은 채널(문자, 푸시, 메신저, 전자우편)로 보낸 알림이 실제로 나가는 대신 여기에 쌓입니다. 최신 순입니다.": (
            "Notifications sent on channels without a gateway (SMS, push, messenger, e-mail) collect here instead of going out. Newest first.",
            "通过未配置网关的渠道（短信、推送、即时通讯、电子邮件）发送的通知不会真正发出，而是保存在这里。最新的在前。",
            "ゲートウェイが設定されていないチャネル（SMS、プッシュ、メッセンジャー、メール）で送った通知は、実際には送信されずここに溜まります。新しい順です。",
        ),
        "경도": ("Longitude", "经度", "経度"),
        "구급": ("EMS", "急救", "救急"),
        "구조": ("Rescue", "救援", "救助"),
        "기타": ("Other", "其他", "その他"),
        "긴급": ("Emergency", "紧急", "緊急"),
        "다시 연결하는 중…": ("Reconnecting…", "正在重新连接…", "再接続しています…"),
        "링크 열기": ("Open link", "打开链接", "リンクを開く"),
        "메모": ("Notes", "备注", "メモ"),
        "메모 (선택)": ("Note (optional)", "备注（可选）", "メモ（任意）"),
        "메모 추가": ("Add note", "添加备注", "メモを追加"),
        "받는 사람": ("Recipient", "收件人", "宛先"),
        "받는 사람 (전화번호·전자우편·사용자)": (
            "Recipient (phone · e-mail · user)",
            "收件人（电话·电子邮件·用户）",
            "宛先（電話番号・メール・ユーザー）",
        ),
        "받은 알림이 없습니다.": (
            "No notifications received.",
            "没有收到通知。",
            "受信した通知はありません。",
        ),
        "배정": ("Assigned", "已分配", "割り当て"),
        "번호": ("Number", "编号", "番号"),
        "변경": ("Change", "更改", "変更"),
        "보낼 시각": ("Send at", "发送时间", "送信予定"),
        "복귀": ("Returning", "返回", "帰署"),
        "볼 수 없음": ("Hidden", "不可查看", "閲覧不可"),
        "사건": ("Incident", "事件", "事案"),
        "사건 지도": ("Incident map", "事件地图", "事案地図"),
        "사건 현황판": ("Incident board", "事件看板", "事案ボード"),
        "상태": ("Status", "状态", "状態"),
        "상태 변경": ("Change status", "更改状态", "状態を変更"),
        "새 사건 접수": ("Log a new incident", "登记新事件", "新しい事案を受付"),
        "세부 유형": ("Subtype", "细分类型", "詳細種別"),
        "시도": ("Attempts", "尝试次数", "試行"),
        "신고 처리 상황": ("Status of your report", "报案处理情况", "通報の処理状況"),
        "신고자": ("Reporter", "报案人", "通報者"),
        "신고자 이름": ("Reporter's name", "报案人姓名", "通報者の氏名"),
        "신고자 전화": ("Reporter's phone", "报案人电话", "通報者の電話"),
        "실시간 연결됨": ("Live", "实时已连接", "リアルタイム接続中"),
        "없음": ("None", "无", "なし"),
        "연결하는 중…": ("Connecting…", "正在连接…", "接続しています…"),
        "연락처 보기 (기록됨)": (
            "Show contact (logged)",
            "查看联系方式（将被记录）",
            "連絡先を表示（記録されます）",
        ),
        "위도": ("Latitude", "纬度", "緯度"),
        "유형": ("Type", "类型", "種別"),
        "이 화면은 상태가 바뀌면 저절로 새로 고쳐집니다.": (
            "This page updates by itself when the status changes.",
            "状态变化时本页面会自动刷新。",
            "状態が変わるとこの画面は自動で更新されます。",
        ),
        "이동 중": ("En route", "途中", "移動中"),
        "자료": ("Media", "资料", "資料"),
        "장소": ("Place", "地点", "場所"),
        "접수": ("Received", "已受理", "受付"),
        "접수 번호": ("Report number", "受理编号", "受付番号"),
        "종결": ("Closed", "已结案", "終結"),
        "진행 중인 사건": ("Open incidents", "进行中的事件", "進行中の事案"),
        "진행 중인 사건 지도": ("Map of open incidents", "进行中事件地图", "進行中の事案の地図"),
        "진행 중인 사건이 없습니다.": (
            "No open incidents.",
            "没有进行中的事件。",
            "進行中の事案はありません。",
        ),
        "채널": ("Channel", "渠道", "チャネル"),
        "처리 경과": ("Timeline", "处理经过", "処理経過"),
        "처리 완료": ("Resolved", "处理完毕", "処理完了"),
        "추가": ("Add", "添加", "追加"),
        "출동": ("Dispatched", "出动", "出動"),
        "출동 단위": ("Units", "出动单位", "出動隊"),
        "현장": ("On scene", "现场", "現場"),
        "현장 도착": ("On scene", "到达现场", "現場到着"),
        "현재 상태": ("Current status", "当前状态", "現在の状態"),
        "화재": ("Fire", "火灾", "火災"),
    }
)
# Home tiles of the kernel's live pages.
T.update(
    {
        "상황 관제": ("Situation", "态势监控", "状況管制"),
        "진행 중인 사건을 지도와 목록으로 실시간 확인": (
            "Open incidents, live on a map and a list",
            "在地图和列表上实时查看进行中的事件",
            "進行中の事案を地図と一覧でリアルタイムに確認",
        ),
        "실시간 위치": ("Live positions", "实时位置", "リアルタイム位置"),
        "출동대와 협력자의 위치를 지도에서 확인": (
            "Where units and collaborators are, on a map",
            "在地图上查看出动队和协作者的位置",
            "出動隊と協力者の位置を地図で確認",
        ),
    }
)
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
