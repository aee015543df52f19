//! Header blocks and separator lines that open quoted or forwarded history.
//!
//! - Header blocks: Outlook, Windows Mail, Gmail/Apple/Thunderbird forwards, Samsung, Zimbra and
//!   Lotus Notes repeat the old message's headers ("From:/Sent:/To:/Subject:", "Von:/Gesendet:/
//!   An:/Betreff:", "De :/Envoyé :/À :/Objet :", "От:/Отправлено:/Кому:/Тема:", "差出人:/送信日時:
//!   /宛先:/件名:" …) in any order, values sometimes wrapped onto a second line.
//! - Separators: "-----Original Message-----" and its translations, forward markers
//!   ("---------- Forwarded message ---------", "Begin forwarded message:", "-------- Message
//!   transféré --------" …), Lotus Notes' "----- Forwarded by … -----", and attributions set
//!   between dashes (Zoho's "---- On … wrote ----").

use std::collections::HashMap;

use once_cell::sync::Lazy;

use super::quote_attribution::is_attribution;

/// What a header label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Label {
    From,
    Sent,
    Date,
    To,
    Cc,
    Subject,
}

const FROM: &[&str] = &[
    "from",
    "von",
    "de",
    "da",
    "van",
    "från",
    "fra",
    "lähettäjä",
    "od",
    "от",
    "від",
    "kimden",
    "差出人",
    "送信者",
    "发件人",
    "發件人",
    "寄件者",
    "寄件人",
    "보낸 사람",
    "보낸사람",
    "feladó",
    "afzender",
    "remitente",
    "mittente",
    "remetente",
    "expéditeur",
    "absender",
    "avsändare",
    "afsender",
    "avsender",
    "nadawca",
    "odesílatel",
    "отправитель",
    "відправник",
    "gönderen",
];
/// Outlook's "Sent:" and its translations: only mail clients write these.
const SENT: &[&str] = &[
    "sent",
    "sent at",
    "gesendet",
    "envoyé",
    "envoye",
    "envoyé le",
    "date d'envoi",
    "enviado",
    "enviado el",
    "enviada",
    "enviado em",
    "enviados",
    "inviato",
    "verzonden",
    "verstuurd",
    "skickat",
    "skickades",
    "sendt",
    "lähetetty",
    "wysłano",
    "wysłane",
    "wysłany",
    "odesláno",
    "отправлено",
    "надіслано",
    "відправлено",
    "gönderildi",
    "gönderilme tarihi",
    "gönderilenler",
    "送信日時",
    "发送时间",
    "發送時間",
    "寄件日期",
    "傳送時間",
    "보낸 날짜",
    "elküldve",
];
const DATE: &[&str] = &[
    "date",
    "datum",
    "fecha",
    "data",
    "dato",
    "päivämäärä",
    "päiväys",
    "дата",
    "tarih",
    "日付",
    "日時",
    "日期",
    "时间",
    "時間",
    "날짜",
    "dátum",
];
const TO: &[&str] = &[
    "to",
    "an",
    "à",
    "a",
    "para",
    "aan",
    "till",
    "til",
    "vastaanottaja",
    "do",
    "кому",
    "komu",
    "kime",
    "宛先",
    "收件人",
    "收件者",
    "受信者",
    "받는 사람",
    "받는사람",
    "címzett",
    "destinatario",
    "destinatari",
    "destinataire",
    "empfänger",
    "mottagare",
    "modtager",
    "mottaker",
    "adresat",
    "příjemce",
    "получатель",
    "одержувач",
    "alıcı",
];
const CC: &[&str] = &[
    "cc",
    "kopie",
    "kopie (cc)",
    "kopia",
    "kopio",
    "kopi",
    "копия",
    "копія",
    "bilgi",
    "抄送",
    "副本",
    "참조",
    "másolat",
    "cópia",
    "copia",
    "cci",
    "bcc",
    "dw",
];
const SUBJECT: &[&str] = &[
    "subject",
    "betreff",
    "objet",
    "asunto",
    "oggetto",
    "assunto",
    "onderwerp",
    "ämne",
    "emne",
    "aihe",
    "temat",
    "předmět",
    "тема",
    "konu",
    "件名",
    "主题",
    "主旨",
    "主題",
    "제목",
    "tárgy",
    "sujet",
];

static LABELS: Lazy<HashMap<&'static str, Label>> = Lazy::new(|| {
    let mut m = HashMap::new();
    for (names, label) in [
        (FROM, Label::From),
        (SENT, Label::Sent),
        (DATE, Label::Date),
        (TO, Label::To),
        (CC, Label::Cc),
        (SUBJECT, Label::Subject),
    ] {
        for n in names {
            m.insert(*n, label);
        }
    }
    m
});

/// Longest label in bytes (with some slack for spaces), so lines without an early colon are
/// rejected without lowercasing.
const MAX_LABEL_BYTES: usize = 32;

/// The label that starts `line` (`From:`, `*Von:*`, `De :`, `件名：`), if any.
pub(super) fn label_at(line: &str) -> Option<Label> {
    let t = line.trim_start().trim_start_matches(['*', ' ', '\u{a0}']);
    let b = t.as_bytes();
    // ':' is ASCII and '：' starts with a lead byte, so `colon` is a char boundary.
    let colon = (0..b.len().min(MAX_LABEL_BYTES + 4))
        .find(|&k| b[k] == b':' || b[k..].starts_with("：".as_bytes()))?;
    let name = t[..colon].trim_end_matches(['*', ' ', '\u{a0}', '\t']);
    if name.is_empty() || name.len() > MAX_LABEL_BYTES {
        return None;
    }
    lookup(name)
}

fn lookup(name: &str) -> Option<Label> {
    if let Some(l) = LABELS.get(name) {
        return Some(*l);
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) || !name.is_ascii() {
        return LABELS.get(name.to_lowercase().as_str()).copied();
    }
    None
}

/// At most this many lines make one header block (wrapped To/Cc lists included).
const BLOCK_LINES: usize = 24;

/// A header block starts at line `i`: labels for From, Subject and a date or recipient, in any
/// order, within a few lines (values may wrap onto the next line). A From line whose value is an
/// address also makes a block with a date and a recipient ("From/Date/To" of some forwards),
/// while "From: Berlin / To: Munich / Date: Monday" in a booking request does not.
pub(super) fn header_block_at(lines: &[&str], i: usize) -> bool {
    let Some(first) = lines.get(i) else {
        return false;
    };
    let Some(first_label) = label_at(first) else {
        return false;
    };
    if first_label == Label::From && one_line_block(first) {
        return true;
    }
    let mut seen = [false; 6];
    let mut from_has_address = false;
    let mut gap = 0;
    let mut blanks = 0;
    for line in lines.iter().skip(i).take(BLOCK_LINES) {
        if line.trim().is_empty() {
            blanks += 1;
            if blanks > 1 {
                break;
            }
            continue;
        }
        blanks = 0;
        match label_at(line) {
            Some(label) => {
                gap = 0;
                if label == Label::From && !seen[Label::From as usize] {
                    from_has_address = line.contains('@');
                }
                seen[label as usize] = true;
            }
            // A wrapped To/Cc list ("Anna <a@x>; Ben <b@x>;") continues the block; other
            // lines may wrap a value once or twice.
            None if line.contains('@') || line.trim_end().ends_with([';', ',']) => {}
            None => {
                gap += 1;
                if gap > 2 {
                    break;
                }
            }
        }
        let has = |l: Label| seen[l as usize];
        let dated = has(Label::Sent) || has(Label::Date);
        let addressed = has(Label::To) || has(Label::Cc);
        if has(Label::From)
            && ((has(Label::Subject) && (dated || addressed))
                || (has(Label::Sent) && addressed)
                || (from_has_address && dated && addressed))
        {
            return true;
        }
    }
    false
}

/// "From: x Sent: y To: z Subject: w" on one line, as flowed text or some HTML conversions
/// leave it.
fn one_line_block(line: &str) -> bool {
    let mut seen = [false; 6];
    let mut rest = line;
    let mut count = 0;
    while let Some(pos) = rest.find([':', '：']) {
        count += 1;
        if count > 40 {
            break;
        }
        let before = rest[..pos].trim_end_matches(['*', ' ', '\u{a0}']);
        // The label is the last one to three words before the colon.
        let words: Vec<&str> = before.rsplitn(4, ' ').collect();
        for n in 1..=words.len().min(3) {
            let mut parts: Vec<&str> = words[..n].to_vec();
            parts.reverse();
            let name = parts.join(" ");
            if let Some(l) = lookup(name.trim_start_matches('*')) {
                seen[l as usize] = true;
                break;
            }
        }
        let skip = rest[pos..].chars().next().map_or(1, char::len_utf8);
        rest = &rest[pos + skip..];
    }
    seen[Label::From as usize]
        && seen[Label::Subject as usize]
        && (seen[Label::Sent as usize] || seen[Label::Date as usize] || seen[Label::To as usize])
}

/// Phrases that, between dashes or before a colon, mark where an original or forwarded message
/// begins (lowercase, apostrophes as `'`).
const MARKERS: &[&str] = &[
    // original message
    "original message",
    "original mail",
    "ursprüngliche nachricht",
    "ursprüngliche mail",
    "originalnachricht",
    "original-nachricht",
    "message d'origine",
    "message original",
    "mail original",
    "mensaje original",
    "correo original",
    "messaggio originale",
    "mensagem original",
    "oorspronkelijk bericht",
    "origineel bericht",
    "ursprungligt meddelande",
    "originalmeddelande",
    "oprindelig meddelelse",
    "original meddelelse",
    "opprinnelig melding",
    "alkuperäinen viesti",
    "wiadomość oryginalna",
    "oryginalna wiadomość",
    "původní zpráva",
    "pôvodná správa",
    "исходное сообщение",
    "оригинальное сообщение",
    "исходное письмо",
    "оригінальне повідомлення",
    "вихідне повідомлення",
    "початкове повідомлення",
    "özgün ileti",
    "orijinal mesaj",
    "orijinal ileti",
    "元のメッセージ",
    "原始邮件",
    "原始郵件",
    "原邮件",
    "원본 메시지",
    "원래 메시지",
    "eredeti üzenet",
    "mesaj original",
    "αρχικό μήνυμα",
    "originalna poruka",
    // forwarded message
    "forwarded message",
    "forwarded e-mail",
    "weitergeleitete nachricht",
    "weitergeleitete e-mail",
    "message transféré",
    "mensaje reenviado",
    "messaggio inoltrato",
    "mensagem encaminhada",
    "mensagem reencaminhada",
    "doorgestuurd bericht",
    "doorgestuurde e-mail",
    "vidarebefordrat meddelande",
    "vidarebefordrat brev",
    "vidarebefordrat mejl",
    "videresendt meddelelse",
    "videresendt besked",
    "videresendt melding",
    "välitetty viesti",
    "przekazana wiadomość",
    "wiadomość przekazana",
    "přeposlaná zpráva",
    "preposlaná správa",
    "пересылаемое сообщение",
    "пересланное сообщение",
    "переслане повідомлення",
    "пересланий лист",
    "iletilen ileti",
    "yönlendirilen ileti",
    "転送されたメッセージ",
    "转发的邮件",
    "轉寄的郵件",
    "전달된 메시지",
    "továbbított üzenet",
    "edelleenlähetetty viesti",
    "välitetty viesti / fwd.msg",
    "wiadomość przesłana dalej",
    "treść przekazanej wiadomości",
    "перенаправленное сообщение",
    "proslijeđena poruka",
    "mesaj redirecționat",
    "メッセージを転送",
    // Apple Mail's "Begin forwarded message:" (before a colon)
    "begin forwarded message",
    "anfang der weitergeleiteten nachricht",
    "début du message réexpédié",
    "début du message transféré",
    "inicio del mensaje reenviado",
    "inizio messaggio inoltrato",
    "início da mensagem reencaminhada",
    "início da mensagem encaminhada",
    "begin doorgestuurd bericht",
    "start på videresendt besked",
    "start på videresendt melding",
    "välitetty viesti alkaa",
    "początek przekazywanej wiadomości",
    "začátek přeposílané zprávy",
    "начало переадресованного сообщения",
    "начало пересылаемого сообщения",
    "початок пересланого повідомлення",
    "iletilen iletinin başlangıcı",
    "転送メッセージ",
    "转发的邮件开始",
    "전달된 메일",
];

/// Lotus Notes: "----- Forwarded by Max Muster/ACME on 23.11.2026 10:00 -----"; Mutt:
/// "----- Forwarded message from Max Muster <max@example.de> -----".
const FORWARDED_BY: &[&str] = &[
    "forwarded by ",
    "forwarded message from ",
    "weitergeleitete nachricht von ",
    "weitergeleitet von ",
    "transféré par ",
    "reenviado por ",
    "inoltrato da ",
    "doorgestuurd door ",
    "encaminhado por ",
];

/// A line that starts quoted or forwarded history by itself.
pub(super) fn is_separator(line: &str) -> bool {
    let t = line.trim();
    if is_reply_above_marker(t) {
        return true;
    }
    let dashed = t.starts_with(['-', '_', '=', '—']);
    let colon = t.ends_with([':', '：']);
    if !dashed && !colon {
        return false;
    }
    if dashed && marker_then_header(t) {
        return true;
    }
    if t.len() > 300 {
        return false;
    }
    let lower = normalize(t);
    let inner = lower.trim_matches(['-', '_', '=', '—', ' ', '\u{a0}', '*']);
    let closed = dashed && lower.ends_with(['-', '_', '=', '—']);
    if closed {
        let inner_sp = inner.trim_end_matches([':', '：', ' ']);
        if MARKERS.contains(&inner_sp)
            || (lower.starts_with("-----") && inner.contains("original"))
            || (lower.starts_with("--------") && inner.contains("forward"))
            || FORWARDED_BY.iter().any(|f| inner.starts_with(f))
        {
            return true;
        }
        // Zoho: "---- On Mon, 23 Nov 2026 10:00:00 +0100 John <john@example.com> wrote ----"
        if inner.len() > 10 && is_attribution(&format!("{inner}:"), false) {
            return true;
        }
        return false;
    }
    if colon {
        let phrase = inner.trim_end_matches([':', '：', ' ', '\u{a0}']);
        return MARKERS.contains(&phrase);
    }
    // "-----Original Message-----" without the closing dashes on some clients.
    dashed && inner.len() < 40 && MARKERS.contains(&inner)
}

/// Lowercase, apostrophes as `'`, and no combining dot (Turkish "İ" lowercases to "i̇").
fn normalize(t: &str) -> String {
    t.to_lowercase().replace('’', "'").replace('\u{307}', "")
}

/// A short title between dashes ("-------- Välitetty viesti --------"), in any language:
/// history when a header block follows it.
pub(super) fn is_dashed_title(t: &str) -> bool {
    let Some(inner) = t.strip_prefix("--").and_then(|r| r.strip_suffix("--")) else {
        return false;
    };
    let inner = inner.trim_matches(['-', ' ', '\u{a0}']);
    let n = inner.chars().count();
    (3..=60).contains(&n) && inner.chars().any(char::is_alphabetic) && !inner.contains("--")
}

/// Yahoo's text part: "----- Forwarded Message ----- From: … To: … Subject: …" on one line.
fn marker_then_header(t: &str) -> bool {
    let inner_start = t.len() - t.trim_start_matches(['-', '—']).len();
    let Some(close) = t[inner_start..].find("--").map(|p| p + inner_start) else {
        return false;
    };
    let rest = t[close..].trim_start_matches(['-', '—', ' ', '\u{a0}']);
    if rest.is_empty() || close - inner_start > 60 {
        return false;
    }
    let inner = normalize(t[inner_start..close].trim());
    MARKERS.contains(&inner.as_str()) && label_at(rest).is_some()
}

/// Ticket systems' "##- Please type your reply above this line -##" and the like: what
/// follows is the notification being answered.
fn is_reply_above_marker(t: &str) -> bool {
    if t.len() > 160 {
        return false;
    }
    if contains_ascii_ci(t, "above this line") {
        return t.split_whitespace().count() <= 12;
    }
    if !t.starts_with(['#', '-', '=', '*', '_', '[']) {
        return false;
    }
    let l = t.to_lowercase();
    [
        "über dieser zeile",
        "oberhalb dieser zeile",
        "au-dessus de cette ligne",
        "encima de esta línea",
        "sopra questa riga",
        "boven deze regel",
        "acima desta linha",
        "ovanför denna rad",
        "над этой строкой",
    ]
    .iter()
    .any(|m| l.contains(m))
}

fn contains_ascii_ci(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(label_at("From: x"), Some(Label::From));
        assert_eq!(label_at("*Von:* x"), Some(Label::From));
        assert_eq!(label_at("De : x"), Some(Label::From));
        assert_eq!(label_at("Envoyé\u{a0}: lundi"), Some(Label::Sent));
        assert_eq!(label_at("件名： テスト"), Some(Label::Subject));
        assert_eq!(label_at("보낸 사람: 김"), Some(Label::From));
        assert_eq!(label_at("Отправлено: 23 ноября"), Some(Label::Sent));
        assert_eq!(label_at("From the log: x"), None);
        assert_eq!(label_at("Note: x"), None);
        assert_eq!(label_at(&"é".repeat(40)), None);
    }

    fn block(t: &str) -> bool {
        let lines: Vec<&str> = t.split('\n').collect();
        header_block_at(&lines, 0)
    }

    #[test]
    fn header_blocks_in_any_order_and_language() {
        assert!(block(
            "From: A <a@example.com>\nSent: Monday\nTo: B\nSubject: x"
        ));
        assert!(block("Date: Mon\nFrom: A\nTo: B\nSubject: x"));
        assert!(block("Subject: x\nDate: Mon\nFrom: A\nTo: B"));
        assert!(block(
            "Von: Max Muster\n<max@example.de>\nGesendet: Montag, 23. November 2026\n10:00\nAn: Helpdesk\nBetreff: VPN"
        ));
        assert!(block(
            "От: Иван\nОтправлено: 23 ноября 2026 г. 10:00\nКому: helpdesk\nТема: VPN"
        ));
        assert!(block(
            "差出人: 山田\n送信日時: 2026年11月23日 10:00\n宛先: helpdesk\n件名: VPN"
        ));
        assert!(block(
            "From: A <a@example.com> Sent: Monday To: B Subject: x"
        ));
        assert!(block("From: a@example.com\nDate: Mon\nTo: B"));
        // Outlook without a Subject in sight: a long Cc list wraps over many lines.
        assert!(block(
            "From: Anna Berg\nSent: Monday, November 23, 2026 10:00 AM\nTo: Helpdesk\nCc: A One <a1@example.com>; B Two <b2@example.com>;\nC Three <c3@example.com>; D Four <d4@example.com>;\nE Five <e5@example.com>; F Six <f6@example.com>;\nG Seven <g7@example.com>"
        ));
    }

    #[test]
    fn not_header_blocks() {
        assert!(!block("From: the error log it looks like toner.\nThanks"));
        assert!(!block("From: Berlin\nTo: Munich\nDate: Monday 24.11."));
        assert!(!block("From: Berlin\n\n\nSubject: x\nTo: y"));
    }

    #[test]
    fn separators() {
        for s in [
            "-----Original Message-----",
            "-----Ursprüngliche Nachricht-----",
            "-------- Ursprüngliche Nachricht --------",
            "----- Mail original -----",
            "-----Message d’origine-----",
            "-----Исходное сообщение-----",
            "---------- Forwarded message ---------",
            "---------- Пересылаемое сообщение ----------",
            "------------------ 原始邮件 ------------------",
            "-------- İletilen İleti --------",
            "---------- Edelleenlähetetty viesti ---------",
            "Begin forwarded message:",
            "Début du message réexpédié :",
            "Anfang der weitergeleiteten Nachricht:",
            "----- Forwarded by Max Muster/ACME on 23.11.2026 10:00 -----",
            "----- Forwarded message from Backup <backup@example.com> -----",
            "---- On Mon, 23 Nov 2026 10:00:00 +0100 John Doe <john@example.com> wrote ----",
        ] {
            assert!(is_separator(s), "{s}");
        }
        assert!(is_separator(
            "  ----- Forwarded Message ----- From: John Doe <john@example.com>To: Ann <ann@example.com>Sent: Tuesday, November 2, 2021, 09:26:50 AM GMT+1Subject: Invoice"
        ));
        assert!(is_separator(
            "##- Please type your reply above this line -##"
        ));
        assert!(is_separator("-- Reply above this line to add a comment --"));
        assert!(is_separator(
            "##- Bitte geben Sie Ihre Antwort über dieser Zeile ein -##"
        ));
        for s in [
            "-----",
            "----- Update -----",
            "Note:",
            "- original item",
            "----- Update ----- From: now on we use the new VPN",
            "I wrote my question above this line of the log, but nobody answered it in two weeks",
        ] {
            assert!(!is_separator(s), "{s}");
        }
    }
}
