//! The new text of a reply: quoted history and signatures removed (REFERENCE pain point 8).
//!
//! Works on lines. History starts at the first of: an attribution line ("On … wrote:" in
//! English, German, French, Spanish, Dutch…), an "-----Original Message-----" separator, an
//! Outlook header block ("From: … Sent: … To: … Subject:", also localised), a forward marker, or
//! a run of `>`-quoted lines that lasts to the end. Interleaved replies (answers between quoted
//! lines) keep the answers. A signature starts at "-- " or a "Sent from my iPhone"-style line.
//! If nothing is left, the full text is kept: a ticket never loses what the sender wrote.

/// Separator lines that start quoted history (compared after trimming, case-insensitively).
const SEPARATORS: &[&str] = &[
    "-----original message-----",
    "----- original message -----",
    "-----ursprüngliche nachricht-----",
    "----- ursprüngliche nachricht -----",
    "-----message d'origine-----",
    "----- message d'origine -----",
    "-----mensaje original-----",
    "----- mensaje original -----",
    "-----oorspronkelijk bericht-----",
    "----- oorspronkelijk bericht -----",
    "-----messaggio originale-----",
    "-----mensagem original-----",
    "---------- forwarded message ---------",
    "---------- forwarded message ----------",
    "-------- original message --------",
    "-------- forwarded message --------",
    "-------- ursprüngliche nachricht --------",
    "-------- weitergeleitete nachricht --------",
    "---------- weitergeleitete nachricht ---------",
    "-------- message original --------",
    "-------- message transféré --------",
    "---------- message transféré ---------",
    "---------- mensaje reenviado ---------",
    "begin forwarded message:",
    "anfang der weitergeleiteten nachricht:",
    "début du message réexpédié :",
    "début du message réexpédié:",
    "inicio del mensaje reenviado:",
    "begin doorgestuurd bericht:",
];

/// Header names that open an Outlook-style header block, by language.
const FROM_NAMES: &[&str] = &["from", "von", "de", "van", "da", "från", "fra", "od", "от"];
const DATE_NAMES: &[&str] = &[
    "sent",
    "date",
    "gesendet",
    "datum",
    "envoyé",
    "enviado el",
    "enviado",
    "fecha",
    "verzonden",
    "data",
    "inviato",
    "skickat",
    "sendt",
    "wysłano",
];
const REST_NAMES: &[&str] = &[
    "to",
    "an",
    "à",
    "a",
    "para",
    "aan",
    "cc",
    "subject",
    "betreff",
    "objet",
    "asunto",
    "onderwerp",
    "oggetto",
    "assunto",
    "ämne",
    "emne",
    "temat",
];

/// Lines that start a mobile or webmail signature.
const SIGNATURE_STARTS: &[&str] = &[
    "sent from my ",
    "sent from outlook",
    "sent from mail for windows",
    "sent from yahoo mail",
    "sent from samsung",
    "sent via blackberry",
    "sent via the samsung",
    "sent with proton mail",
    "get outlook for ",
    "von meinem iphone gesendet",
    "von meinem ipad gesendet",
    "von meinem samsung",
    "von meinem mobiltelefon gesendet",
    "gesendet von meinem ",
    "gesendet von outlook",
    "gesendet mit der ",
    "gesendet mit bluemail",
    "outlook für ios beziehen",
    "outlook für android beziehen",
    "envoyé de mon ",
    "envoyé à partir de outlook",
    "obtenir outlook pour ",
    "enviado desde mi ",
    "enviado desde outlook",
    "obtener outlook para ",
    "verzonden vanaf mijn ",
    "verstuurd vanaf mijn ",
    "outlook voor ios downloaden",
    "outlook voor android downloaden",
    "inviato da iphone",
    "inviato dal mio ",
    "skickat från min ",
];

/// The new text of `full`: quoted history and signature removed, trailing blank lines trimmed.
pub fn clean_body(full: &str) -> String {
    let full = full.replace("\r\n", "\n");
    let lines: Vec<&str> = full.split('\n').collect();
    let cut = history_start(&lines).unwrap_or(lines.len());
    let mut kept: Vec<&str> = Vec::with_capacity(cut);
    let mut i = 0;
    while i < cut {
        // Attributions left before the cut belong to interleaved quotes: drop them too.
        if let Some(span) = attribution_at(&lines, i) {
            i += span;
            continue;
        }
        if !is_quoted(lines[i]) {
            kept.push(lines[i]);
        }
        i += 1;
    }
    // A signature ends the new text: the "-- " delimiter anywhere, a "Sent from my iPhone"
    // line only near the end (a sentence like "Sent from my home office, …" further up is text).
    let mut nonblank_after = vec![0usize; kept.len() + 1];
    for j in (0..kept.len()).rev() {
        nonblank_after[j] = nonblank_after[j + 1] + usize::from(!kept[j].trim().is_empty());
    }
    let sig = kept.iter().enumerate().position(|(j, l)| {
        is_sig_delimiter(l)
            || (nonblank_after[j + 1] <= MAX_LINES_AFTER_MOBILE_SIG && is_signature_start(l))
    });
    if let Some(sig) = sig {
        kept.truncate(sig);
    }
    let text = trim_lines(&kept);
    if text.is_empty() {
        return trim_lines(&lines);
    }
    text
}

fn trim_lines(lines: &[&str]) -> String {
    let is_blank = |l: &&str| l.trim().is_empty() || is_rule(l.trim());
    let start = lines
        .iter()
        .position(|l| !is_blank(l))
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !is_blank(l))
        .map_or(start, |e| e + 1);
    let mut out = String::new();
    let mut blank = false;
    for (i, l) in lines[start..end].iter().enumerate() {
        let l = l.trim_end();
        // Removed quotes leave runs of blank lines behind: one is enough.
        if l.is_empty() && blank {
            continue;
        }
        blank = l.is_empty();
        if i > 0 {
            out.push('\n');
        }
        out.push_str(l);
    }
    out
}

/// Horizontal rules that separate a reply from history (Outlook's underscores, dashes).
fn is_rule(t: &str) -> bool {
    t.len() >= 4 && (t.chars().all(|c| c == '_') || t.chars().all(|c| c == '-' || c == '—'))
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// A mobile signature line is followed by at most this many lines (the app's link, a name).
const MAX_LINES_AFTER_MOBILE_SIG: usize = 4;

fn is_sig_delimiter(line: &str) -> bool {
    line == "-- " || line == "--" || line == "—"
}

fn is_signature_start(line: &str) -> bool {
    if is_sig_delimiter(line) {
        return true;
    }
    let t = line.trim();
    if t.chars().count() > 80 {
        return false;
    }
    let l = t.to_lowercase();
    SIGNATURE_STARTS.iter().any(|s| l.starts_with(s))
}

/// Index of the first line of quoted history, if any.
fn history_start(lines: &[&str]) -> Option<usize> {
    // next_other[i]: the first line at or after i that is neither blank nor quoted. Computed
    // once so that "quoted to the end" is O(1) per line (no quadratic scans on long quotes).
    let mut next_other = vec![lines.len(); lines.len() + 1];
    for i in (0..lines.len()).rev() {
        next_other[i] = if lines[i].trim().is_empty() || is_quoted(lines[i]) {
            next_other[i + 1]
        } else {
            i
        };
    }
    let quoted_to_end = |i: usize| {
        let j = next_other[i];
        j == lines.len() || is_signature_start(lines[j])
    };
    for i in 0..lines.len() {
        let t = lines[i].trim();
        if t.is_empty() {
            continue;
        }
        let lower = t.to_lowercase();
        if SEPARATORS.iter().any(|s| lower == *s)
            || (lower.starts_with("-----")
                && lower.contains("original")
                && lower.ends_with("-----"))
            || (lower.starts_with("--------") && lower.contains("forward"))
        {
            return Some(i);
        }
        if is_rule(t) && header_block_at(lines, next_nonblank(lines, i + 1)) {
            return Some(i);
        }
        if header_block_at(lines, i) {
            return Some(i);
        }
        if let Some(span) = attribution_at(lines, i) {
            // Interleaved reply: answers between quoted blocks after the attribution stay.
            let rest = &lines[i + span..];
            if is_interleaved(&rest[..rest.len().min(INTERLEAVE_LOOKAHEAD)]) {
                continue;
            }
            return Some(i);
        }
        if is_quoted(lines[i]) && quoted_to_end(i) {
            return Some(i);
        }
    }
    None
}

fn next_nonblank(lines: &[&str], from: usize) -> usize {
    (from..lines.len())
        .find(|&j| !lines[j].trim().is_empty())
        .unwrap_or(lines.len())
}

/// `Name:` header at the start of `line` (bold markers from HTML conversion stripped).
fn header_name(line: &str) -> Option<String> {
    let t = line.trim().trim_start_matches(['*', ' ']);
    let colon = t.find(':')?;
    let name = t[..colon].trim().trim_end_matches('*').trim();
    if name.is_empty() || name.chars().count() > 12 {
        return None;
    }
    Some(name.to_lowercase())
}

/// An Outlook header block: a From line, then within the next lines a date line and a
/// To/Subject line.
fn header_block_at(lines: &[&str], i: usize) -> bool {
    let Some(first) = lines.get(i) else {
        return false;
    };
    let Some(name) = header_name(first) else {
        return false;
    };
    if !FROM_NAMES.contains(&name.as_str()) {
        return false;
    }
    let mut has_date = false;
    let mut has_rest = false;
    for line in lines.iter().skip(i + 1).take(8) {
        if let Some(n) = header_name(line) {
            if DATE_NAMES.contains(&n.as_str()) {
                has_date = true;
            } else if REST_NAMES.contains(&n.as_str()) {
                has_rest = true;
            }
        }
    }
    has_date && has_rest
}

/// An attribution line ("On … wrote:"), possibly wrapped over two or three lines. Returns how
/// many lines it spans.
fn attribution_at(lines: &[&str], i: usize) -> Option<usize> {
    let first = lines[i].trim();
    let lower_first = first.to_lowercase();
    let starts = [
        "on ", "am ", "le ", "el ", "op ", "il ", "em ", "den ", "w dniu ",
    ];
    if !starts.iter().any(|s| lower_first.starts_with(s)) && !lower_first.contains(" wrote") {
        return None;
    }
    let mut joined = String::new();
    for span in 1..=3 {
        let Some(line) = lines.get(i + span - 1) else {
            break;
        };
        if span > 1 && line.trim().is_empty() {
            break;
        }
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(line.trim());
        if joined.chars().count() > 400 {
            break;
        }
        if is_attribution(&joined.to_lowercase()) {
            return Some(span);
        }
    }
    None
}

fn is_attribution(l: &str) -> bool {
    let l = l.trim_end();
    let ends = |suffixes: &[&str]| suffixes.iter().any(|s| l.ends_with(s));
    (l.starts_with("on ") && ends(&["wrote:", "wrote :", "writes:"]))
        || (l.starts_with("am ") && l.contains("schrieb") && l.ends_with(':'))
        || (l.starts_with("le ") && ends(&["a écrit :", "a écrit:", "a ecrit :", "a ecrit:"]))
        || (l.starts_with("el ") && ends(&["escribió:", "escribio:", "escribió :"]))
        || (l.starts_with("op ") && l.contains("schreef") && l.ends_with(':'))
        || (l.starts_with("il ") && ends(&["ha scritto:", "ha scritto :"]))
        || (l.starts_with("em ") && ends(&["escreveu:", "escreveu :"]))
        || (l.starts_with("den ") && ends(&["skrev:", "skrev :"]))
        || (l.starts_with("w dniu ") && ends(&["pisze:", "napisał:", "napisała:"]))
        // "John Doe <john@example.com> wrote:" (older clients, some mobiles)
        || (l.contains('@') && ends(&["wrote:", "schrieb:", "a écrit :"]) && l.len() < 200)
}

/// How many lines after an attribution are read to tell an interleaved reply (bounded, so a
/// mail of a thousand attributions stays linear).
const INTERLEAVE_LOOKAHEAD: usize = 400;

/// After an attribution: quoted lines and unquoted answers alternate.
fn is_interleaved(rest: &[&str]) -> bool {
    let mut seen_quote = false;
    let mut answer_after_quote = false;
    for line in rest {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if is_signature_start(line) {
            break;
        }
        if is_quoted(line) {
            if answer_after_quote {
                return true;
            }
            seen_quote = true;
        } else if seen_quote {
            answer_after_quote = true;
        } else {
            // Unquoted text right after the attribution: top-posted history (Outlook style).
            return false;
        }
    }
    // quote, answer (and no further quote) is also an interleaved reply
    answer_after_quote
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_reply() {
        let t = "Thanks, works now.\n\nOn Mon, Nov 23, 2026 at 10:00 AM John Doe <john@example.com> wrote:\n> Please restart.\n> \n";
        assert_eq!(clean_body(t), "Thanks, works now.");
    }

    #[test]
    fn wrapped_gmail_attribution() {
        let t = "Yes.\n\nOn Mon, Nov 23, 2026 at 10:00 AM Helpdesk <\nhelpdesk@example.com> wrote:\n\n> old\n";
        assert_eq!(clean_body(t), "Yes.");
    }

    #[test]
    fn german_french_spanish_dutch() {
        for t in [
            "Neu\n\nAm 23.11.2026 um 10:00 schrieb Max Muster <max@example.de>:\n> alt",
            "Neu\n\nLe lun. 23 nov. 2026 à 10:00, Jean <jean@example.fr> a écrit :\n> vieux",
            "Neu\n\nEl lun, 23 nov 2026 a las 10:00, Juan (<juan@example.es>) escribió:\n> viejo",
            "Neu\n\nOp ma 23 nov. 2026 om 10:00 schreef Jan <jan@example.nl>:\n> oud",
        ] {
            assert_eq!(clean_body(t), "Neu", "{t}");
        }
    }

    #[test]
    fn outlook_blocks() {
        let t = "Fixed.\n\nBest regards\nAnna\n\n________________________________\nFrom: Helpdesk <helpdesk@example.com>\nSent: Monday, November 23, 2026 10:00\nTo: Anna <anna@example.com>\nSubject: RE: VPN\n\nold text\n";
        assert_eq!(clean_body(t), "Fixed.\n\nBest regards\nAnna");
        let t = "Erledigt.\n\nVon: Helpdesk <helpdesk@example.com>\nGesendet: Montag, 23. November 2026 10:00\nAn: Anna\nBetreff: AW: VPN\n\nalt";
        assert_eq!(clean_body(t), "Erledigt.");
        let t = "Merci\n\nDe : Helpdesk <helpdesk@example.com>\nEnvoyé : lundi 23 novembre 2026 10:00\nÀ : Anne\nObjet : RE: VPN\n\nvieux";
        assert_eq!(clean_body(t), "Merci");
        let t = "Hi\n\n-----Original Message-----\nFrom: x\nold";
        assert_eq!(clean_body(t), "Hi");
    }

    #[test]
    fn signatures() {
        assert_eq!(clean_body("Hello\n\nSent from my iPhone"), "Hello");
        assert_eq!(clean_body("Hallo\n\nVon meinem iPhone gesendet\n"), "Hallo");
        assert_eq!(clean_body("Salut\n\nEnvoyé de mon iPhone"), "Salut");
        assert_eq!(
            clean_body("Hi\n\nGet Outlook for iOS<https://aka.ms/o0ukef>"),
            "Hi"
        );
        assert_eq!(clean_body("Hi\n-- \nJohn\nACME"), "Hi");
    }

    #[test]
    fn signature_phrases_only_near_the_end() {
        let t = "Hi,\nSent from my home office the VPN fails.\nIt works in the office.\nDetails:\n1. a\n2. b\n3. c\n\nThanks";
        assert_eq!(clean_body(t), t);
        assert_eq!(
            clean_body("Hi\n\nSent from my iPhone\nJohn Doe\n+1 555 0100"),
            "Hi"
        );
    }

    #[test]
    fn interleaved_reply_keeps_answers() {
        let t = "On Mon, John wrote:\n> Is it on?\nYes.\n> Model?\nHP 4000\n";
        assert_eq!(clean_body(t), "Yes.\nHP 4000");
    }

    #[test]
    fn never_empty() {
        let t = "> only quoted\n> text";
        assert_eq!(clean_body(t), "> only quoted\n> text");
        assert_eq!(clean_body("Sent from my iPhone"), "Sent from my iPhone");
        assert_eq!(clean_body(""), "");
    }

    #[test]
    fn long_quotes_stay_linear() {
        // 200k quoted lines followed by text, and 50k attributions: must finish quickly
        // (quadratic scanning would take minutes).
        let mut t = "> q\n".repeat(200_000);
        t.push_str("answer\n");
        assert!(clean_body(&t).ends_with("answer"));
        let t = "On Mon, X wrote:\n> a\nb\n".repeat(50_000);
        assert!(!clean_body(&t).is_empty());
    }

    #[test]
    fn plain_text_untouched() {
        let t = "Hello,\n\nthe printer on floor 2 is broken.\nFrom: the error log it looks like toner.\n\nThanks\n\n\n";
        assert_eq!(
            clean_body(t),
            "Hello,\n\nthe printer on floor 2 is broken.\nFrom: the error log it looks like toner.\n\nThanks"
        );
    }
}
