//! The new text of a reply: quoted history and signatures removed (REFERENCE pain point 8).
//!
//! Works on lines. History starts at the first of:
//! - an attribution line in the client's language, possibly wrapped over two or three lines
//!   ([`quote_attribution`](super::quote_attribution): "On … wrote:", "Am … schrieb …:",
//!   "Le … a écrit :", "… пишет:", date-first forms such as `26.06.2014, 11:22, "Name" <addr>:`);
//! - a separator ("-----Original Message-----" and translations, forward markers such as
//!   "---------- Forwarded message ---------" or "Begin forwarded message:");
//! - a header block of the quoted message, in any language and order ("From:/Sent:/To:/
//!   Subject:", "Von:/Gesendet:/An:/Betreff:", "От:/Отправлено:/Кому:/Тема:" …), also after an
//!   Outlook rule line ([`quote_headers`](super::quote_headers));
//! - a run of `>`-quoted lines that lasts to the end (or to a signature).
//!
//! Interleaved replies (answers between quoted lines) keep the answers. The new text then ends
//! at its signature ([`signature`](super::signature): "-- ", a mobile tagline near the end, a
//! mailing-list footer, a closing "-Name").
//!
//! Never empty when there was text: if nothing is left (a pure forward, a mail that is only
//! quoted text or only a tagline), the whole text is kept, trimmed — the ticket never loses
//! what the sender wrote.

use super::quote_attribution::{is_attribution, opens_attribution};
use super::quote_headers::{header_block_at, is_dashed_title, is_separator};
use super::signature::{is_signature_start, signature_start};

/// The new text of `full`: quoted history and signature removed, trailing blank lines trimmed.
pub fn clean_body(full: &str) -> String {
    let full = if full.contains('\r') {
        std::borrow::Cow::Owned(full.replace("\r\n", "\n"))
    } else {
        std::borrow::Cow::Borrowed(full)
    };
    let lines: Vec<&str> = full.split('\n').collect();
    let cut = history_start(&lines).unwrap_or(lines.len());
    let mut kept: Vec<&str> = Vec::with_capacity(cut);
    let mut i = 0;
    while i < cut {
        if is_quoted(lines[i]) {
            i += 1;
            continue;
        }
        // Attributions and separators left before the cut belong to interleaved quotes: drop
        // them too.
        if is_separator(lines[i].trim()) {
            i += 1;
            continue;
        }
        if let Some(span) = attribution_at(&lines[..cut], i) {
            i += span;
            continue;
        }
        kept.push(lines[i]);
        i += 1;
    }
    if let Some(sig) = signature_start(&kept) {
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
    // A long quoted run asks about the same following line again and again: remember it.
    let mut asked: Option<(usize, bool)> = None;
    let mut quoted_to_end = |i: usize| {
        let j = next_other[i];
        if let Some((k, answer)) = asked {
            if k == j {
                return answer;
            }
        }
        let answer = j == lines.len() || is_signature_start(lines[j]);
        asked = Some((j, answer));
        answer
    };
    for i in 0..lines.len() {
        let t = lines[i].trim();
        if t.is_empty() {
            continue;
        }
        if is_groupwise_header(t) {
            return Some(i);
        }
        if is_quoted(t) {
            if quoted_to_end(i) {
                return Some(i);
            }
            continue;
        }
        // Samsung Email writes its HTML reply header into the text part too:
        // `<div>-------- Original message --------</div><div>From: …`.
        if leading_div_text(t).is_some_and(is_separator) {
            return Some(i);
        }
        if is_separator(t) {
            // "Begin forwarded message:" over `>`-quoted lines with text below them: the text
            // below is the sender's, as in an interleaved reply.
            if quote_then_text(&lines[i + 1..]) {
                continue;
            }
            return Some(i);
        }
        if (is_rule(t) || is_dashed_title(t)) && header_block_at(lines, next_nonblank(lines, i + 1))
        {
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
    }
    None
}

/// The text of the `<div>` a line starts with (`<div>text</div>…`), if it does.
fn leading_div_text(t: &str) -> Option<&str> {
    let rest = t.get(..5)?.eq_ignore_ascii_case("<div>").then(|| &t[5..])?;
    let end = rest.find("</div>").or_else(|| rest.find("</DIV>"))?;
    Some(&rest[..end])
}

/// GroupWise's reply header: `>>> "Max Muster" <max@example.de> 23.11.2026 10:00 >>>`.
fn is_groupwise_header(t: &str) -> bool {
    t.len() > 8
        && t.starts_with(">>>")
        && t.ends_with(">>>")
        && t.bytes().any(|b| b.is_ascii_digit())
        && !t[3..t.len() - 3].contains(">>")
}

fn next_nonblank(lines: &[&str], from: usize) -> usize {
    (from..lines.len())
        .find(|&j| !lines[j].trim().is_empty())
        .unwrap_or(lines.len())
}

fn ends_with_colon(line: &str) -> bool {
    line.trim_end().ends_with([':', '：'])
}

/// An attribution line ("On … wrote:"), possibly wrapped over two or three lines, starting at
/// line `i`. Returns how many lines it spans.
fn attribution_at(lines: &[&str], i: usize) -> Option<usize> {
    // Every attribution ends with a colon: most lines are ruled out without allocating.
    let mut last = None;
    for span in 1..=3 {
        let Some(line) = lines.get(i + span - 1) else {
            break;
        };
        // Gmail wraps inside the address: "… Dart Vader <luke@example.com" / "> wrote:".
        let wrapped_address = span > 1 && line.trim_start().starts_with("> ") && {
            let prev = lines[i + span - 2];
            prev.rfind('<').is_some_and(|lt| !prev[lt..].contains('>'))
        };
        if line.trim().is_empty() || (is_quoted(line) && !wrapped_address) {
            break;
        }
        if ends_with_colon(line) {
            last = Some(span);
            break;
        }
        // A sentence ends here and a new one starts below: no wrapped attribution.
        let next_starts_upper = lines
            .get(i + span)
            .and_then(|n| n.trim_start().chars().next())
            .is_some_and(char::is_uppercase);
        if line.trim_end().ends_with(['.', '!', '?']) && next_starts_upper {
            break;
        }
    }
    let span = last?;
    let joined = join_trimmed(&lines[i..i + span]);
    let next = next_nonblank(lines, i + span);
    let above_quote = lines.get(next).is_some_and(|l| is_quoted(l));
    if !is_attribution(&joined, above_quote) {
        return None;
    }
    // "Thanks" + "On … wrote:" right below it: the attribution starts on the later line —
    // unless this line opens it ("On Mon, … John") or the next one continues it
    // ("<john@example.com> wrote:", "helpdesk@example.com> wrote:").
    if span > 1
        && !opens_attribution(lines[i])
        && !continues_line(lines[i + 1])
        && is_attribution(&join_trimmed(&lines[i + 1..i + span]), above_quote)
    {
        return None;
    }
    Some(span)
}

fn continues_line(line: &str) -> bool {
    line.trim_start()
        .starts_with(|c: char| matches!(c, '<' | '(' | '[' | '@') || c.is_lowercase())
}

fn join_trimmed(lines: &[&str]) -> String {
    let mut joined = String::new();
    for l in lines {
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(l.trim());
    }
    joined
}

/// After a forward marker: `>`-quoted lines, a blank line, then unquoted text to the end
/// (a line that lost its `>` inside the quote is no answer).
fn quote_then_text(rest: &[&str]) -> bool {
    let rest = &rest[..rest.len().min(INTERLEAVE_LOOKAHEAD)];
    let mut j = next_nonblank(rest, 0);
    if !rest.get(j).is_some_and(|l| is_quoted(l)) {
        return false;
    }
    while j < rest.len() && is_quoted(rest[j]) {
        j += 1;
    }
    if j >= rest.len() || !rest[j].trim().is_empty() {
        return false;
    }
    let text = &rest[j..];
    text.iter().any(|l| !l.trim().is_empty()) && !text.iter().any(|l| is_quoted(l))
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
    fn samsung_html_header_in_text_part() {
        let t = "Works again, thanks.\n\n<div>-------- Original message --------</div><div>From: Helpdesk <helpdesk@example.com> </div><div>Subject: Re: Wi-Fi </div><div>\n</div>Hello,\n\nplease restart the router.\n";
        assert_eq!(clean_body(t), "Works again, thanks.");
        // A line that only starts with a div is text.
        let t = "<div>Hello</div> there\n";
        assert_eq!(clean_body(t), "<div>Hello</div> there");
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
        let t = "Done.\n\nFrom: Helpdesk <h@x.com> Sent: Monday, 23 November 2026 10:00 To: A Subject: VPN\nold";
        assert_eq!(clean_body(t), "Done.");
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
    #[test]
    fn attributions_in_many_languages() {
        for a in [
            "Den mån 23 nov. 2026 kl 10:00 skrev Sven Svensson <sven@example.se>:",
            "man. 23. nov. 2026 kl. 10:00 skrev Ola Nordmann <ola@example.no>:",
            "pon., 23 lis 2026 o 10:00 Jan Kowalski <jan@example.pl> napisał(a):",
            "Dne 23. 11. 26 v 10:00 Jan Novák napsal(a):",
            "23.11.2026 10:00, Иван Петров пишет:",
            "пн, 23 лист. 2026 о 10:00 Олена Коваль <olena@example.com.ua> пише:",
            "23 Kas 2026 Pzt, saat 10:00 tarihinde Ahmet Yılmaz <ahmet@example.com.tr> şunu yazdı:",
            "2026年11月23日(月) 10:00 山田太郎 <taro@example.jp>:",
            "张伟 <wei@example.cn> 于2026年11月23日周一 10:00写道：",
            "2026년 11월 23일 (월) 오전 10:00, 김민준 <minjun@example.kr>님이 작성:",
            "26.06.2014, 11:22, \"Иван Петров\" <ivan@example.ru>:",
            "2014-06-26 11:22 GMT+02:00 Jan Kowalski <jan@example.pl>:",
        ] {
            let t = format!("Nowy tekst\n\n{a}\n> stary\n> tekst\n");
            assert_eq!(clean_body(&t), "Nowy tekst", "{a}");
        }
    }

    #[test]
    fn attribution_wrapped_inside_the_address() {
        let t = "Thanks, works.\n\nOn Fri, Jul 18, 2026 at 1:17 AM, Dart Vader <dart@example.com\n> wrote:\n\n> old\n";
        assert_eq!(clean_body(t), "Thanks, works.");
    }

    #[test]
    fn text_below_a_quoted_forward_stays() {
        let t = "Hello\n\nBegin forwarded message:\n\n> From: A <a@example.com>\n> Subject: x\n>\n> old\n\nText bottom\n";
        assert_eq!(clean_body(t), "Hello\n\nText bottom");
    }

    #[test]
    fn any_dashed_title_above_a_header_block() {
        let t = "Hei\n\n-------- Viesti eteenpäin --------\nAihe: x\nPäivämäärä: 23.11.2026\nLähettäjä: A <a@example.com>\nVastaanottaja: B\n\nvanha";
        assert_eq!(clean_body(t), "Hei");
    }

    #[test]
    fn helpdesk_reply_marker() {
        let t = "Still broken.\n\n##- Please type your reply above this line -##\n\nYour request 4711 was updated.";
        assert_eq!(clean_body(t), "Still broken.");
    }

    #[test]
    fn attribution_wrapped_after_a_weekday() {
        let t = "Спасибо, работает.\n\nпн, 23 нояб. 2026 г. в 10:00, Иван Петров\n<ivan.petrov@example.ru>:\n\n> Перезагрузите.\n";
        assert_eq!(clean_body(t), "Спасибо, работает.");
        // No blank line between the reply and a wrapped attribution.
        let t =
            "Thanks\nOn Mon, Nov 23, 2026 at 10:00 AM John\nDoe <john@example.com> wrote:\n> old";
        assert_eq!(clean_body(t), "Thanks");
        let t = "Thanks\nJohn Doe <john@example.com> wrote:\n> old";
        assert_eq!(clean_body(t), "Thanks");
    }

    #[test]
    fn localized_header_blocks_and_separators() {
        let t = "Valmis.\n\nLähettäjä: Helpdesk <helpdesk@example.com>\nLähetetty: maanantai 23. marraskuuta 2026 10.00\nVastaanottaja: Matti\nAihe: VPN\n\nvanha";
        assert_eq!(clean_body(t), "Valmis.");
        let t = "Готово.\n\nОт: Helpdesk <helpdesk@example.com>\nОтправлено: 23 ноября 2026 г. 10:00\nКому: Иван\nТема: VPN\n\nстарое";
        assert_eq!(clean_body(t), "Готово.");
        let t = "Klart.\n\n-----Ursprungligt meddelande-----\nFrån: Helpdesk\nSkickat: den 23 november 2026 10:00\nTill: Sven\nÄmne: VPN";
        assert_eq!(clean_body(t), "Klart.");
        let t = "See below.\n\nDate: Mon, 23 Nov 2026 08:01:00 +0100\nFrom: Backup <backup@example.com>\nTo: it@example.com\nSubject: Backup failed\n\nJob failed.";
        assert_eq!(clean_body(t), "See below.");
        let t = "Ok\n\n>>> \"Max Muster\" <max@example.de> 23.11.2026 10:00 >>>\nalter Text";
        assert_eq!(clean_body(t), "Ok");
    }

    #[test]
    fn wrote_inside_new_text_is_kept() {
        let t = "Hi,\n\nI tried what the technician wrote: restart, then log in. It still fails.\nThe technician wrote:\n1. restart\n2. log in\n\nThanks";
        assert_eq!(clean_body(t), t);
        let t = "On Monday the technician wrote:\nplease reboot\n\nI did, no change.";
        assert_eq!(clean_body(t), t);
    }

    #[test]
    fn dates_in_new_text_are_kept() {
        let t = "Hello,\n\nthe server crashed on 23.11.2026 at 10:00 and the log wrote:\nsegfault at 0x0\n\nOn 24.11.2026 at 09:00 it happened again.\nMeeting on 25.11.2026 at 10:00 with John <john@example.com>:\nroom 4.";
        assert_eq!(clean_body(t), t);
    }

    #[test]
    fn from_line_in_own_text_is_kept() {
        let t = "Please book a flight:\nFrom: Berlin\nTo: Munich\nDate: 24.11.2026\n\nThanks";
        assert_eq!(clean_body(t), t);
        let t = "From: my home office the VPN drops every 10 minutes.\nSubject: is the same on the laptop.";
        assert_eq!(clean_body(t), t);
    }

    #[test]
    fn sent_from_my_desk_is_kept() {
        let t = "Hi,\n\nSent from my desk, the print job never arrives.\n\nThanks";
        assert_eq!(clean_body(t), t);
        let t = "Hi,\n\nthe printer is broken.\n\nSent from my desk";
        assert_eq!(clean_body(t), t);
        assert_eq!(
            clean_body("Hi,\n\nthe printer is broken.\n\nVon meinem Huawei-Telefon gesendet"),
            "Hi,\n\nthe printer is broken."
        );
    }

    #[test]
    fn footers_and_closing_name() {
        let t = "Works now.\n\n-Priya";
        assert_eq!(clean_body(t), "Works now.");
        let t = "Works now.\n\n> old\n\n_______________________________________________\nUsers mailing list\nusers@lists.example.org\nhttps://lists.example.org/mailman/listinfo/users\n";
        assert_eq!(clean_body(t), "Works now.");
    }
}
