//! Where the sender's new text ends: signature delimiters, mobile taglines, mailing-list
//! footers and a closing "-Name".
//!
//! Only whole lines near the end count, so the customer's own words stay: "Sent from my desk,
//! the printer …" is text (no device or mail app in it), and "Sent from my iPhone" with more
//! than a few lines after it is text too.

/// A tagline is followed by at most this many non-blank lines (the app's link, a name, a phone
/// number).
const MAX_LINES_AFTER_TAGLINE: usize = 4;
/// A list footer is at most this many non-blank lines.
const MAX_FOOTER_LINES: usize = 10;

/// The signature delimiter "-- " (also without its space, and an em dash some clients write).
pub(super) fn is_delimiter(line: &str) -> bool {
    // "-- " also with a no-break space or more spaces, as editors and HTML leave it.
    matches!(line.trim_end(), "--" | "—")
}

/// A line that starts a signature or footer wherever it stands (used where quoted history
/// is followed by one).
pub(super) fn is_signature_start(line: &str) -> bool {
    is_delimiter(line) || is_tagline(line)
}

/// Index (into `lines`) where the signature or footer of the new text starts, if any.
pub(super) fn signature_start(lines: &[&str]) -> Option<usize> {
    let mut nonblank_after = vec![0usize; lines.len() + 1];
    for j in (0..lines.len()).rev() {
        nonblank_after[j] = nonblank_after[j + 1] + usize::from(!lines[j].trim().is_empty());
    }
    let cut = lines.iter().enumerate().position(|(j, l)| {
        is_delimiter(l)
            || (nonblank_after[j + 1] <= MAX_LINES_AFTER_TAGLINE && is_tagline(l))
            || (nonblank_after[j + 1] < MAX_FOOTER_LINES && is_list_footer(lines, j))
    });
    let end = cut.unwrap_or(lines.len());
    // A closing "-Name" on the last line.
    let last = (0..end).rev().find(|&j| !lines[j].trim().is_empty())?;
    if is_closing_name(lines[last]) {
        let prev = (0..last).rev().find(|&j| !lines[j].trim().is_empty());
        // Not the last item of a list written with dashes.
        if prev.is_none_or(|p| !lines[p].trim_start().starts_with('-')) {
            return Some(last);
        }
    }
    cut
}

/// Device and mail-app words: a tagline names one ("Sent from my desk" does not).
const DEVICES: &[&str] = &[
    "iphon",
    "ipad",
    "ipod",
    "android",
    "samsung",
    "galaxy",
    "blackberry",
    "huawei",
    "xiaomi",
    "redmi",
    "oneplus",
    "pixel",
    "nokia",
    "xperia",
    "motorola",
    "fairphone",
    "outlook",
    "windows",
    "yahoo",
    "aol",
    "gmail",
    "proton",
    "tutanota",
    "zoho",
    "gmx",
    "web.de",
    "t-online",
    "mail.ru",
    "yandex",
    "яндекс",
    "почт",
    "mobile",
    "mobil",
    "móvil",
    "mobiel",
    "cellulare",
    "celular",
    "telefon",
    "téléphone",
    "telephone",
    "phone",
    "smartphone",
    "smarttelefon",
    "älypuhelin",
    "puhelimesta",
    "smartfon",
    "handy",
    "tablet",
    "device",
    "gerät",
    "appareil",
    "dispositivo",
    "apparaat",
    "enhet",
    "laitteesta",
    "urządzeni",
    "zařízení",
    "устройств",
    "пристро",
    "телефон",
    "смартфон",
    "cihaz",
    "htc",
    "sony",
    "oppo",
    "honor",
    "realme",
    "lenovo",
    "moto ",
    "lumia",
    "kindle",
    "surface",
    "verizon",
    "sprint",
    "t-mobile",
    " ios",
    "mymail",
    "mailbird",
    "superhuman",
    "newton",
    "edison",
    "canary",
    "spike",
    "thunderbird",
    "bluemail",
    "spark",
    "airmail",
    "aquamail",
    "k-9",
    "fairemail",
    "mail app",
    "メール",
    "スマートフォン",
    "端末",
    "手机",
    "手機",
    "设备",
    "휴대폰",
    "스마트폰",
    "기기",
    "메일",
];

/// Taglines that start with the verb ("Sent from …", "Envoyé de …", "Отправлено с …").
const VERB_FIRST: &[&str] = &[
    "sent from ",
    "sent with ",
    "sent via ",
    "sent using ",
    "sent on my ",
    "gesendet von ",
    "gesendet mit ",
    "gesendet vom ",
    "gesendet über ",
    "diese nachricht wurde von ",
    "envoyé de ",
    "envoyé depuis ",
    "envoyé à partir de ",
    "envoyé avec ",
    "envoyé du ",
    "envoyé via ",
    "envoye de ",
    "envoye depuis ",
    "enviado desde ",
    "enviado con ",
    "enviado a través de ",
    "enviado mediante ",
    "enviado do ",
    "enviado da ",
    "enviado de ",
    "enviado com ",
    "enviado pelo ",
    "enviado a partir do ",
    "enviado via ",
    "enviada do ",
    "inviato da ",
    "inviato dal ",
    "inviato dall'",
    "inviato con ",
    "inviato tramite ",
    "verzonden vanaf ",
    "verstuurd vanaf ",
    "verzonden vanuit ",
    "verstuurd vanuit ",
    "verzonden met ",
    "verstuurd met ",
    "verzonden via ",
    "skickat från ",
    "skickades från ",
    "skickat med ",
    "skickat via ",
    "sendt fra ",
    "sendt med ",
    "sendt via ",
    "lähetetty ",
    "wysłane z ",
    "wysłane ze ",
    "wysłano z ",
    "wysłano ze ",
    "wysłane przy użyciu ",
    "wysłane za pomocą ",
    "odesláno z ",
    "odesláno ze ",
    "odeslané z ",
    "odesláno pomocí ",
    "odoslané z ",
    "отправлено с ",
    "отправлено со ",
    "отправлено из ",
    "отправлено через ",
    "надіслано з ",
    "надіслано зі ",
    "надіслано із ",
    "відправлено з ",
    "відправлено зі ",
    "发自",
    "發自",
    "从我的",
    "從我的",
    "来自我的",
    "來自我的",
    "发送自",
    "發送自",
];

/// Taglines that end with the verb ("Von meinem iPhone gesendet", "iPhone'umdan gönderildi",
/// "iPhoneから送信", "iPhone에서 보냄").
const VERB_LAST: &[&str] = &[
    " gesendet",
    " versendet",
    " gönderildi",
    " küldve",
    "から送信",
    "より送信",
    "から送信しました",
    "에서 보냄",
    "에서 보냈습니다",
    "에서 전송",
    "发送",
    "傳送",
    "發送",
];

/// Words of "Get Outlook for iOS" and its translations.
const GET_APP: &[&str] = &[
    "get ",
    "obtenir ",
    "télécharger ",
    "obtener ",
    "descargar ",
    "scarica ",
    "ottieni ",
    "obter ",
    "obtenha ",
    "baixe ",
    "download",
    "herunterladen",
    "beziehen",
    "hämta ",
    "hent ",
    "få ",
    "hanki ",
    "lataa ",
    "pobierz ",
    "stáhněte",
    "stáhnout",
    "получить ",
    "получите ",
    "скачать ",
    "скачайте ",
    "загрузите ",
    "отримати ",
    "отримайте ",
    "завантажити ",
    "edinin",
    "indirin",
    "入手",
    "获取",
    "獲取",
    "下载",
    "下載",
    "받기",
    "다운로드",
];

/// A mobile or webmail tagline: a whole short line naming a device or mail app.
pub(super) fn is_tagline(line: &str) -> bool {
    let t = line.trim();
    if t.is_empty() || t.len() > 300 {
        return false;
    }
    // The app's link stays on the line: "Get Outlook for iOS<https://aka.ms/o0ukef>",
    // "… (https://aka.ms/ghei36)" from HTML.
    let t = match t.find("<http").or_else(|| t.find("(http")) {
        Some(p) => t[..p].trim_end(),
        None => t,
    };
    let t = t.trim_end_matches(['.', '!', ' ', '\u{a0}']);
    // 4 to 90 characters; counted only where the byte length leaves it open.
    let chars_ok = match t.len() {
        0..4 => false,
        16..=90 => true,
        361.. => false,
        _ => (4..=90).contains(&t.chars().count()),
    };
    if !chars_ok || t.contains(['?', ':']) {
        return false;
    }
    // Lower-casing changes no white space: count the words before paying for it (this runs on
    // every line after a quote attribution).
    let words = t.split_whitespace().count();
    if words > 12 {
        return false;
    }
    let l = if t.is_ascii() {
        t.to_ascii_lowercase()
    } else {
        t.to_lowercase()
    };
    // The device is named in a few words; a comma may add a short apology ("…, please excuse
    // typos") but not a sentence ("Sent from Outlook, but the attachment is missing").
    let names_device = |s: &str| {
        let (device, after) = s.split_once(',').unwrap_or((s, ""));
        DEVICES.iter().any(|d| device.contains(d))
            && device.split_whitespace().count() <= 6
            && after.split_whitespace().count() <= 4
    };
    let first = l.as_bytes()[0];
    if let Some(p) = VERB_FIRST
        .iter()
        .find(|p| p.as_bytes()[0] == first && l.starts_with(*p))
    {
        return names_device(&l[p.len()..]);
    }
    if let Some(s) = VERB_LAST.iter().find(|s| l.ends_with(*s)) {
        return names_device(&l[..l.len() - s.len()]);
    }
    l.contains("outlook")
        && ["android", "ios", "iphone", "ipad", "windows"]
            .iter()
            .any(|d| l.contains(d))
        && GET_APP.iter().any(|g| l.contains(g))
        && words <= 8
}

/// Google Groups' footer, in the languages it is sent in (the line then names the group's
/// googlegroups.com address within a few lines).
const GROUP_FOOTER_STARTS: &[&str] = &[
    "you received this message because you are subscribed to",
    "you received this message because you are a member of",
    "to unsubscribe from this group",
    "sie haben diese nachricht erhalten, weil sie",
    "sie erhalten diese nachricht, weil sie",
    "vous avez reçu ce message, car vous êtes abonné",
    "vous recevez ce message, car vous êtes abonné",
    "recibiste este mensaje porque",
    "has recibido este mensaje porque",
    "hai ricevuto questo messaggio perché",
    "você recebeu essa mensagem porque",
    "você recebeu esta mensagem porque",
    "je hebt dit bericht ontvangen omdat",
    "u ontvangt dit bericht omdat",
    "du har fått det här meddelandet eftersom",
    "du modtager denne meddelelse, fordi",
    "du mottar denne meldingen fordi",
    "otrzymujesz tę wiadomość, ponieważ",
    "tuto zprávu jste obdrželi, protože",
    "вы получили это сообщение, поскольку",
    "вы получили это сообщение, так как",
    "ви отримали це повідомлення, тому що",
];

/// A mailing-list footer starts at `lines[j]`: Mailman's rule + "X mailing list" + listinfo
/// URL, or Google Groups' "You received this message because …".
fn is_list_footer(lines: &[&str], j: usize) -> bool {
    let t = lines[j].trim();
    if t.is_empty() {
        return false;
    }
    let window = || lines[j..].iter().take(5).map(|l| l.trim());
    let mailman_url = |s: &str| {
        s.contains("/mailman/listinfo")
            || s.contains("/mailman3/lists/")
            || s.contains("/postorius/lists/")
    };
    if t.len() >= 10 && t.bytes().all(|b| b == b'_') {
        let next = lines[j + 1..]
            .iter()
            .map(|l| l.trim())
            .find(|l| !l.is_empty());
        return next.is_some_and(|n| n.to_lowercase().ends_with("mailing list"))
            || window().any(mailman_url);
    }
    if t.len() > 12 && t.to_lowercase().ends_with("mailing list") {
        return window().any(mailman_url);
    }
    let first = t.chars().next().unwrap_or(' ');
    if !matches!(
        first,
        'Y' | 'y'
            | 'T'
            | 't'
            | 'S'
            | 's'
            | 'V'
            | 'v'
            | 'R'
            | 'r'
            | 'H'
            | 'h'
            | 'J'
            | 'j'
            | 'U'
            | 'u'
            | 'D'
            | 'd'
            | 'O'
            | 'o'
            | 'В'
            | 'в'
    ) {
        return false;
    }
    let l = t.to_lowercase();
    GROUP_FOOTER_STARTS.iter().any(|s| l.starts_with(s))
        && window().any(|w| {
            w.to_lowercase().contains("googlegroups.com")
                || w.to_lowercase().contains("google group")
        })
}

/// "-Name", "--Name", "-- Jane Doe": a sign-off of one to three capitalised words.
fn is_closing_name(line: &str) -> bool {
    let t = line.trim();
    let rest = if let Some(r) = t.strip_prefix("--") {
        r.strip_prefix(' ').unwrap_or(r)
    } else if let Some(r) = t.strip_prefix('-') {
        r // "- item" with a space is a list item
    } else {
        return false;
    };
    if rest.is_empty() || rest.starts_with(['-', ' ']) || rest.chars().count() > 30 {
        return false;
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    (1..=3).contains(&words.len())
        && words[0].chars().next().is_some_and(char::is_uppercase)
        && words[0].chars().count() >= 2
        && words.iter().all(|w| {
            w.chars()
                .all(|c| c.is_alphabetic() || matches!(c, '.' | '\'' | '-'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taglines_in_many_languages() {
        for t in [
            "Sent from my iPhone",
            "Sent from my Samsung Galaxy smartphone.",
            "Sent from Outlook for iOS",
            "Get Outlook for Android<https://aka.ms/ghei36>",
            "Get Outlook for iOS (https://aka.ms/o0ukef)",
            "Sent from Mail for Windows",
            "Sent with Proton Mail secure email.",
            "Von meinem iPhone gesendet",
            "Von meinem Samsung Galaxy Smartphone gesendet.",
            "Gesendet mit der WEB.DE Mail App",
            "Outlook für Android herunterladen",
            "Envoyé de mon iPhone",
            "Obtenir Outlook pour Android",
            "Enviado desde mi iPhone",
            "Enviado do meu iPhone",
            "Inviato da iPhone",
            "Verstuurd vanaf mijn iPhone",
            "Skickat från min iPhone",
            "Sendt fra min iPhone",
            "Lähetetty iPhonesta",
            "Wysłane z iPhone'a",
            "Odesláno z iPhonu",
            "Отправлено с iPhone",
            "Отправлено из мобильной Почты Mail.ru",
            "Надіслано з iPhone",
            "iPhone'umdan gönderildi",
            "iPhoneから送信",
            "发自我的iPhone",
            "iPhone에서 보냄",
            "Sent from my iPhone, please excuse typos",
            "Sent from my HTC",
            "Sent from my T-Mobile 4G LTE Device",
            "Sent from myMail for iOS",
        ] {
            assert!(is_tagline(t), "{t}");
        }
    }

    #[test]
    fn look_alikes_are_text() {
        for t in [
            "Sent from my desk",
            "Sent from my desk, the printer on floor 2 does not print.",
            "Sent from my home office the VPN fails.",
            "Outlook for iOS crashes when I open the calendar",
            "I sent it from my iPhone yesterday: no luck?",
            "Von meinem Schreibtisch gesendet",
            "Sent from Outlook, but the attachment is missing",
            "Sent from my iPhone to the printer on floor 3 it never prints anything",
        ] {
            assert!(!is_tagline(t), "{t}");
        }
    }

    #[test]
    fn closing_names() {
        for t in ["-John", "--Jane Doe", "-- Anna", "-J.R. Smith"] {
            assert!(is_closing_name(t), "{t}");
        }
        for t in [
            "- item",
            "-v",
            "--verbose",
            "-reboot",
            "---",
            "-John, call me at 5",
        ] {
            assert!(!is_closing_name(t), "{t}");
        }
    }

    fn cut(t: &str) -> Option<usize> {
        let lines: Vec<&str> = t.split('\n').collect();
        signature_start(&lines)
    }

    #[test]
    fn footers_and_closing_lines() {
        let mailman = "Answer\n\n_______________________________________________\nUsers mailing list\nusers@lists.example.org\nhttps://lists.example.org/mailman/listinfo/users";
        assert_eq!(cut(mailman), Some(2));
        let groups = "Answer\n\nYou received this message because you are subscribed to the Google Groups \"Ops\" group.\nTo unsubscribe from this group and stop receiving emails from it, send an email to ops+unsubscribe@googlegroups.com.";
        assert_eq!(cut(groups), Some(2));
        assert_eq!(cut("Thanks!\n\n-John"), Some(2));
        assert_eq!(cut("Steps:\n-Restart\n-Reboot"), None);
        assert_eq!(cut("I joined the Google Group. You received this message because you are subscribed, they said."), None);
    }
}
