//! Attribution lines: the one line (sometimes wrapped over two or three) a mail client writes
//! above the quoted message, in the client's language.
//!
//! Three shapes cover what clients write:
//! - **verb last**: "On … wrote:", "Le … a écrit :", "El … escribió:", "Il … ha scritto:",
//!   "Em … escreveu:", "W dniu … pisze:", "Dne … napsal(a):", "… пользователь … написал:",
//!   "… tarihinde … şunu yazdı:", "… 写道：", "…님이 작성:", "…のメール:";
//! - **verb inside**: "Am … schrieb Name:", "Op … schreef Name:", "Den … skrev Name:",
//!   "Name kirjoitti …:", Lotus Notes' "Name wrote on 11/23/2026 10:00:00 AM:";
//! - **no verb**, a date first and the address last: Yandex's `26.06.2014, 11:22, "Name"
//!   <addr>:`, Gmail's `2014-06-26 11:22 GMT+02:00 Name <addr>:` and its Russian/Japanese
//!   forms, mail.ru's "Понедельник, 23 ноября 2026, 10:00 +03:00 от Name <addr>:".
//!
//! A verb alone is not enough ("The technician wrote:" above a pasted list is the customer's
//! text): the line also needs a date or an address, or must sit right above `>`-quoted lines.

/// Verbs that end an attribution (lowercase; the trailing colon is removed before matching).
const VERB_LAST: &[&str] = &[
    "wrote",
    "writes",
    "wrote the following",
    "schrieb",
    "schrieb folgendes",
    "hat geschrieben",
    "a écrit",
    "a ecrit",
    "escribió",
    "escribio",
    "ha escrito",
    "ha scritto",
    "scrisse",
    "escreveu",
    "schreef",
    "heeft geschreven",
    "het volgende geschreven",
    "skrev",
    "skrev følgende",
    "kirjoitti",
    "napisał(a)",
    "napisał",
    "napisała",
    "napisal(a)",
    "pisze",
    "napsal(a)",
    "napsal",
    "napsala",
    "napísal(a)",
    "написал(а)",
    "написал(-а)",
    "написал",
    "написала",
    "пишет",
    "написав(ла)",
    "написав",
    "пише",
    "yazdı",
    "írta",
    "a scris",
    "va escriure",
    "έγραψε",
    "書きました",
    "のメール",
    "写道",
    "寫道",
    "작성",
    "쓴 글",
];

/// Verbs followed by the date ("Name wrote on 11/23/2026 10:00 AM:") or the name ("Am … schrieb
/// Max Muster <max@example.de>:"): matched as whole words inside the line.
const VERB_INSIDE: &[&str] = &[
    " wrote on ",
    " schrieb ",
    " schreef ",
    " skrev ",
    " kirjoitti ",
    " escreveu ",
    " a écrit le ",
    " ha scritto il ",
];

/// Words that open a date-first attribution ("On", "Am", "Le", "W dniu", "Dne", "在" …).
const OPENERS: &[&str] = &[
    "on ",
    "am ",
    "le ",
    "el ",
    "il ",
    "em ",
    "op ",
    "den ",
    "dne ",
    "w dniu ",
    "dnia ",
    "в ",
    "у ",
    "在",
    "la ",
    "στις ",
];

/// Whether `joined` (one line, or wrapped lines joined by a space) is an attribution.
/// `above_quote`: the next non-blank line is `>`-quoted.
pub(super) fn is_attribution(joined: &str, above_quote: bool) -> bool {
    let t = joined.trim();
    let Some(core) = t
        .strip_suffix(':')
        .or_else(|| t.strip_suffix('：'))
        .map(str::trim_end)
    else {
        return false;
    };
    if core.is_empty() || core.len() > 1200 || core.chars().count() > 400 {
        return false;
    }
    let lower = core.to_lowercase();
    // Zimbra opens with "----- ", Sun's Thunderbird closes with ",".
    let l = lower
        .trim_start_matches(['-', ' '])
        .trim_end_matches([',', ' ']);
    verb_last(l, above_quote) || verb_inside(l) || date_then_address(l) || named_first(l)
}

/// Attributions that open with a fixed phrase: Apple Mail's Polish "Wiadomość napisana przez
/// Name <addr> w dniu 23.11.2026, o godz. 10:00", Horde's "Quoting Name <addr>" / "Zitat von
/// Name <addr>".
fn named_first(l: &str) -> bool {
    (l.starts_with("wiadomość napisana przez ") && has_digit(l))
        || (["quoting ", "zitat von ", "citando ", "citation "]
            .iter()
            .any(|p| l.starts_with(p))
            && ends_with_address(l))
}

fn verb_last(l: &str, above_quote: bool) -> bool {
    let Some(verb) = VERB_LAST.iter().find(|v| ends_with_word(l, v)) else {
        return false;
    };
    if above_quote && l.chars().count() <= 160 {
        return true; // "Иван пишет:" right above "> …"
    }
    let before = l[..l.len() - verb.len()].trim_end();
    has_address(l)
        || (has_digit(l) && (starts_with_opener(l) || starts_with_date(l)))
        // Turkish puts the name first: "Name, 27 Ara 2025 Cmt, 16:05 tarihinde şunu yazdı:".
        || (has_digit(before) && before.contains(" tarihinde"))
}

fn verb_inside(l: &str) -> bool {
    let Some(pos) = VERB_INSIDE.iter().find_map(|v| l.find(v)) else {
        return false;
    };
    if !has_digit(l) {
        return false;
    }
    // "Max Muster/ACME schrieb am 23.11.2026 10:00:00" — a name before the verb, not a sentence.
    let before = &l[..pos];
    has_address(l)
        || starts_with_opener(l)
        || starts_with_date(l)
        || (before.chars().count() <= 60 && !before.contains(['.', '!', '?', ';']))
}

/// `26.06.2014, 11:22, "Name" <addr>`, `пн, 23 нояб. 2026 г. в 10:00, Name <addr>`, mail.ru's
/// `Понедельник, 23 ноября 2026, 10:00 +03:00 от Name <addr>`.
fn date_then_address(l: &str) -> bool {
    if l.chars().count() > 200 || !ends_with_address(l) || !has_time(l) {
        return false;
    }
    starts_with_date(l) || starts_with_weekday(l) || l.contains(" от ") || l.contains(" from ")
}

/// The line begins the way attributions begin: "On …", "Am …", a date, a weekday.
pub(super) fn opens_attribution(line: &str) -> bool {
    let l = line.trim().to_lowercase();
    let l = l.trim_start_matches(['-', ' ']);
    starts_with_opener(l) || starts_with_date(l) || starts_with_weekday(l)
}

fn ends_with_word(l: &str, word: &str) -> bool {
    if !l.ends_with(word) {
        return false;
    }
    let before = l[..l.len() - word.len()].chars().next_back();
    // CJK verbs follow the name directly ("张三写道"); others are whole words.
    let cjk = word.chars().next().is_some_and(|c| c as u32 >= 0x2E80);
    cjk || before.is_none_or(|c| !c.is_alphanumeric())
}

fn starts_with_opener(l: &str) -> bool {
    OPENERS.iter().any(|o| l.starts_with(o))
}

fn has_digit(l: &str) -> bool {
    l.bytes().any(|b| b.is_ascii_digit())
}

/// `10:00`, `10.00`, `9:05`.
fn has_time(l: &str) -> bool {
    let b = l.as_bytes();
    b.windows(4).enumerate().any(|(i, w)| {
        w[0].is_ascii_digit()
            && matches!(w[1], b':' | b'.')
            && w[2].is_ascii_digit()
            && w[3].is_ascii_digit()
            && b.get(i + 4).is_none_or(|c| !c.is_ascii_digit())
    })
}

/// A date at the start: `26.06.2014`, `2014-06-26`, `11/23/26`, `2026年`, `2026년`, `23 нояб.`.
pub(super) fn starts_with_date(l: &str) -> bool {
    let digits = l.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 4 {
        return false;
    }
    let rest = &l[digits..];
    let Some(next) = rest.chars().next() else {
        return false;
    };
    match next {
        '.' | '/' | '-' | '年' | '년' => true,
        // "23 Nov 2026", "7 Tem 2026": a month name, then a year or a time somewhere.
        ' ' => rest[1..].starts_with(|c: char| c.is_alphabetic()) && (has_time(l) || has_year(l)),
        _ => false,
    }
}

fn has_year(l: &str) -> bool {
    let b = l.as_bytes();
    b.windows(4).enumerate().any(|(i, w)| {
        (w.starts_with(b"19") || w.starts_with(b"20"))
            && w[2].is_ascii_digit()
            && w[3].is_ascii_digit()
            && (i == 0 || !b[i - 1].is_ascii_digit())
            && b.get(i + 4).is_none_or(|c| !c.is_ascii_digit())
    })
}

/// A weekday first: "пн, 23 …", "czw., 12 mar …", "Montag, 23. …", "po 23. 11. …".
fn starts_with_weekday(l: &str) -> bool {
    let word: usize = l
        .char_indices()
        .find(|(_, c)| !c.is_alphabetic())
        .map_or(l.len(), |(i, _)| i);
    // "On 24.11. …" is an opener, not a weekday.
    if word == 0
        || l[..word].chars().count() > 12
        || OPENERS.iter().any(|o| o.trim_end() == &l[..word])
    {
        return false;
    }
    let rest = l[word..].trim_start_matches(['.', ',', ' ']);
    rest.len() + 4 >= l.len() - word && rest.starts_with(|c: char| c.is_ascii_digit())
}

fn has_address(l: &str) -> bool {
    let b = l.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c == b'@'
            && i > 0
            && b[i - 1].is_ascii_alphanumeric()
            && b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric)
    })
}

/// The line ends with an e-mail address: `<a@b.c>`, `(a@b.c)`, `a@b.c`, `[mailto:a@b.c]`.
fn ends_with_address(l: &str) -> bool {
    let t = l.trim_end_matches(['>', ')', ']', '"', ' ']);
    let token = t
        .rsplit([' ', '<', '(', '[', '"', ','])
        .next()
        .unwrap_or("");
    let token = token.strip_prefix("mailto:").unwrap_or(token);
    match token.split_once('@') {
        Some((user, domain)) => !user.is_empty() && domain.contains('.') && !domain.ends_with('.'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_client_attributions() {
        for a in [
            "On Mon, Nov 23, 2026 at 10:00 AM John Doe <john@example.com> wrote:",
            "On 23 Nov 2026, at 10:00, John Doe <john@example.com> wrote:",
            "Am Mo., 23. Nov. 2026 um 10:00 Uhr schrieb Max Muster <max@example.de>:",
            "Am 23.11.2026 um 10:00 schrieb Max Muster:",
            "Le lun. 23 nov. 2026 à 10:00, Jean Martin <jean@example.fr> a écrit :",
            "El lun, 23 nov 2026 a las 10:00, Juan (<juan@example.es>) escribió:",
            "Il giorno lun 23 nov 2026 alle ore 10:00 Mario Rossi <mario@example.it> ha scritto:",
            "Em seg., 23 de nov. de 2026 às 10:00, João Silva <joao@example.com.br> escreveu:",
            "Maria Sousa <maria@example.pt> escreveu no dia segunda, 23/11/2026 à(s) 10:00:",
            "Op ma 23 nov. 2026 om 10:00 schreef Jan de Vries <jan@example.nl>:",
            "Den mån 23 nov. 2026 kl 10:00 skrev Sven Svensson <sven@example.se>:",
            "man. 23. nov. 2026 kl. 10:00 skrev Ola Nordmann <ola@example.no>:",
            "ma 23. marrask. 2026 klo 10.00 Matti Virtanen (matti@example.fi) kirjoitti:",
            "Matti Virtanen kirjoitti 23.11.2026 klo 10.00:",
            "pon., 23 lis 2026 o 10:00 Jan Kowalski <jan@example.pl> napisał(a):",
            "W dniu 23.11.2026 o 10:00, Jan Kowalski pisze:",
            "po 23. 11. 2026 v 10:00 odesílatel Jan Novák <jan@example.cz> napsal:",
            "Dne 23. 11. 26 v 10:00 Jan Novák napsal(a):",
            "пн, 23 нояб. 2026 г. в 10:00, Иван Петров <ivan@example.ru>:",
            "23 нояб. 2026 г., в 10:00, пользователь Иван Петров <ivan@example.ru> написал:",
            "23.11.2026 10:00, Иван Петров пишет:",
            "пн, 23 лист. 2026 о 10:00 Олена Коваль <olena@example.com.ua> пише:",
            "23 Kas 2026 Pzt, saat 10:00 tarihinde Ahmet Yılmaz <ahmet@example.com.tr> şunu yazdı:",
            "Ahmet Yılmaz, 23 Kas 2026 Pzt, 10:00 tarihinde şunu yazdı:",
            "2026年11月23日(月) 10:00 山田太郎 <taro@example.jp>:",
            "2026/11/23 10:00、山田太郎 <taro@example.jp>のメール:",
            "张伟 <wei@example.cn> 于2026年11月23日周一 10:00写道：",
            "在 2026/11/23 10:00, 张伟 写道:",
            "2026년 11월 23일 (월) 오전 10:00, 김민준 <minjun@example.kr>님이 작성:",
            "26.06.2014, 11:22, \"Иван Петров\" <ivan@example.ru>:",
            "2014-06-26 11:22 GMT+02:00 Jan Kowalski <jan@example.pl>:",
            "Понедельник, 23 ноября 2026, 10:00 +03:00 от Иван Петров <ivan@example.ru>:",
            "\"Max Muster\" <max@example.de> wrote on 11/23/2026 10:00:00 AM:",
            "----- On Nov 23, 2026, at 10:00 AM, John Doe john@example.com wrote:",
            "John Doe <john@example.com> wrote:",
            "Op 23 nov. 2026 om 10:00 heeft Jan de Vries <jan@example.nl> het volgende geschreven:",
            "Wiadomość napisana przez Jan Kowalski <jan@example.pl> w dniu 23.11.2026, o godz. 10:00:",
            "Zitat von Max Muster <max@example.de>:",
        ] {
            assert!(is_attribution(a, false), "{a}");
        }
    }

    #[test]
    fn sentences_are_not_attributions() {
        for s in [
            "The technician wrote:",
            "On Monday the technician wrote:",
            "The server crashed on 23.11.2026 at 10:00 and the log wrote:",
            "Please call John Doe <john@example.com>:",
            "Meeting on 24.11.2026 at 10:00 with John <john@example.com>:",
            "2 users wrote:",
            "Here is the error:",
            "Am Montag schrieb ich Ihnen bereits:",
            "I wrote to John about it.",
        ] {
            assert!(!is_attribution(s, false), "{s}");
        }
        // Right above quoted lines, a short "Name wrote:" is one.
        assert!(is_attribution("Иван пишет:", true));
        assert!(!is_attribution("Here is the error:", true));
    }
}
