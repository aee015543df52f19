//! HTML to readable plain text: a small, tolerant tokenizer (no DOM), linear in the input.
//!
//! Paragraphs and `<br>` become line breaks, lists `- item` / `1. item`, links `text (url)`,
//! table rows one per line with cells joined by ` | `, blockquotes prefixed with `> `. Script,
//! style and head content is dropped, entities are decoded, whitespace collapsed. Broken HTML
//! (unclosed tags, stray `<`, unterminated comments) never fails: it just yields text.
//!
//! With [`Html2TextOptions::strip_quotes`] the quoted history that mail clients mark up is left
//! out, which is how the clean `body` of an HTML-only mail is made: Gmail (`gmail_quote`,
//! `gmail_attr`), Outlook desktop/web/mobile (`divRplyFwdMsg`, `appendonsend`,
//! `OLK_SRC_BODY_SECTION`, `ms-outlook-mobile-reference-message`, and an `<hr>` or border-top
//! `<div>` followed by a header block in any language), Yahoo (`yahoo_quoted`, also with its
//! `ydp…` prefix), Apple Mail/Thunderbird (`blockquote type=cite`, `moz-cite-prefix`), mail.ru
//! (`mail-quote-collapse`, `data-o-mail-quote`), Zimbra (`data-marker="__QUOTED_TEXT__"`,
//! `zwchr`), ProtonMail (`protonmail_quote`), Zoho (`zmail_extra`). Everything after a marker
//! that opens the rest of the mail as history (Outlook's, Zimbra's) is dropped; the others drop
//! just their element. Gmail's indentation (`<blockquote style="margin:0 0 0 40px;border:none">`)
//! is not a quote.

use super::entities::decode_entity;
use super::quote_headers::header_block_at;

/// How [`html_to_text`] renders.
#[derive(Debug, Clone, Copy, Default)]
pub struct Html2TextOptions {
    /// Leave out quoted history and signatures marked up by mail clients.
    pub strip_quotes: bool,
    /// Render `<img alt="…">` as `[alt]`.
    pub image_alt: bool,
}

/// Elements deeper than this are not tracked (their content still becomes text).
const MAX_DEPTH: usize = 256;

/// Converts HTML to plain text.
pub fn html_to_text(html: &str, opts: Html2TextOptions) -> String {
    let mut conv = Converter {
        opts,
        w: Writer::default(),
        stack: Vec::new(),
        skip_depth: 0,
        lists: Vec::new(),
        link: None,
        pre: 0,
        cells: Vec::new(),
        tables: Vec::new(),
        table_scans: 0,
        rule_scans: 0,
        next_table_is_data: false,
        stop: false,
    };
    conv.run(html);
    conv.w.finish()
}

#[derive(Default)]
struct Writer {
    out: String,
    /// A collapsed run of whitespace is waiting to become one space.
    space: bool,
    /// Line breaks wanted before the next text (1 = new line, 2 = blank line).
    breaks: u8,
    /// ` | ` is wanted before the next text of this table row.
    cell_sep: bool,
    quote_depth: usize,
}

impl Writer {
    fn trailing_newlines(&self) -> u8 {
        let mut n = 0u8;
        for b in self.out.bytes().rev() {
            match b {
                b'\n' => n += 1,
                b' ' | b'>' => continue,
                _ => break,
            }
            if n >= 2 {
                break;
            }
        }
        n
    }

    fn at_line_start(&self) -> bool {
        self.out.is_empty() || self.out.ends_with('\n')
    }

    fn block(&mut self, n: u8) {
        self.breaks = self.breaks.max(n);
        self.space = false;
    }

    fn line_break(&mut self) {
        self.flush_breaks();
        self.out.push('\n');
        self.space = false;
        self.cell_sep = false;
    }

    fn flush_breaks(&mut self) {
        if self.breaks > 0 && !self.out.is_empty() {
            let have = self.trailing_newlines();
            for _ in have..self.breaks {
                self.out.push('\n');
            }
            self.space = false;
        }
        self.breaks = 0;
    }

    fn quote_prefix(&mut self) {
        if self.quote_depth > 0 && self.at_line_start() {
            for _ in 0..self.quote_depth {
                self.out.push_str("> ");
            }
        }
    }

    /// Text that keeps its spacing (list markers, separators, preformatted text).
    fn raw(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.flush_breaks();
        self.quote_prefix();
        if self.cell_sep {
            self.out.push_str(" | ");
            self.cell_sep = false;
            self.space = false;
        }
        if self.space && !self.at_line_start() && !self.out.ends_with(' ') {
            self.out.push(' ');
        }
        self.space = false;
        self.out.push_str(s);
    }

    /// Flowing text: whitespace runs collapse into one space.
    fn text(&mut self, s: &str) {
        for (i, word) in s
            .split(|c: char| c.is_ascii_whitespace() || c == '\u{0c}')
            .enumerate()
        {
            if i > 0 {
                self.space = true;
            }
            if !word.is_empty() {
                self.raw(word);
            }
        }
    }

    fn finish(self) -> String {
        tidy(&self.out)
    }
}

/// Trims trailing spaces on every line, turns no-break spaces into spaces, collapses more than
/// one blank line and trims blank lines at both ends.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0usize;
    for line in s.split('\n') {
        let line = line.replace('\u{a0}', " ");
        let line = line.trim_end();
        if line.trim_start_matches(['>', ' ']).is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
            out.push_str(line);
            out.push('\n');
            continue;
        }
        blank_run = 0;
        out.push_str(line);
        out.push('\n');
    }
    while out.ends_with('\n') || out.ends_with(' ') || out.ends_with('>') {
        out.pop();
    }
    out
}

struct Open {
    name: String,
    /// Line breaks this element puts around itself.
    breaks: u8,
    skip: bool,
    cell: bool,
    quote: bool,
}

struct Converter {
    opts: Html2TextOptions,
    w: Writer,
    stack: Vec<Open>,
    skip_depth: usize,
    lists: Vec<(bool, u32)>,
    /// Open link: its href and where its text starts in the output.
    link: Option<(String, usize)>,
    pre: usize,
    /// Per open table row: how many of its cells produced text.
    cells: Vec<usize>,
    /// Per open table: true for a data table (cells joined by ` | `), false for layout.
    tables: Vec<bool>,
    table_scans: usize,
    /// How many rules / bordered blocks were looked behind for a header block.
    rule_scans: usize,
    next_table_is_data: bool,
    stop: bool,
}

struct Tag {
    name: String,
    closing: bool,
    self_closing: bool,
    attrs: Vec<(String, String)>,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn has_class(&self, class: &str) -> bool {
        self.attr("class").is_some_and(|c| {
            c.split_ascii_whitespace()
                .any(|c| c.eq_ignore_ascii_case(class))
        })
    }

    /// A class ending in `suffix` (Yahoo prefixes its classes: `ydp3f2e1a7byahoo_quoted`).
    fn has_class_suffix(&self, suffix: &str) -> bool {
        self.attr("class").is_some_and(|c| {
            c.split_ascii_whitespace().any(|c| {
                c.len() >= suffix.len()
                    && c.is_char_boundary(c.len() - suffix.len())
                    && c[c.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            })
        })
    }

    /// Style without whitespace, lowercase.
    fn style(&self) -> String {
        self.attr("style").map_or_else(String::new, |s| {
            s.chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect::<String>()
                .to_ascii_lowercase()
        })
    }
}

fn is_void(name: &str) -> bool {
    matches!(
        name,
        "br" | "img"
            | "hr"
            | "meta"
            | "link"
            | "input"
            | "col"
            | "area"
            | "base"
            | "wbr"
            | "source"
            | "embed"
            | "param"
            | "track"
            | "keygen"
            | "o:p"
    )
}

fn block_breaks(name: &str) -> u8 {
    match name {
        "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "ul" | "ol" | "dl" | "table"
        | "blockquote" | "pre" | "address" | "figure" | "form" | "fieldset" => 2,
        "div" | "li" | "tr" | "dt" | "dd" | "section" | "article" | "header" | "footer"
        | "center" | "main" | "nav" | "aside" | "caption" | "tbody" | "thead" | "tfoot"
        | "body" | "html" | "hr" | "figcaption" | "summary" | "details" | "legend" => 1,
        _ => 0,
    }
}

/// Raw-text elements whose content is never text.
fn is_raw_skip(name: &str) -> bool {
    matches!(
        name,
        "script" | "style" | "title" | "textarea" | "noscript" | "template" | "xml"
    )
}

impl Converter {
    fn skipping(&self) -> bool {
        self.skip_depth > 0
    }

    /// Inside a cell of a data table (where block breaks become spaces).
    fn in_cell(&self) -> bool {
        self.stack
            .iter()
            .rev()
            .find(|o| o.name.starts_with("td") || o.name.starts_with("th"))
            .is_some_and(|o| o.cell)
    }

    fn in_data_table(&self) -> bool {
        self.tables.last().copied().unwrap_or(false)
    }

    fn run(&mut self, html: &str) {
        let bytes = html.as_bytes();
        let mut i = 0;
        let mut text_start = 0;
        while i < bytes.len() && !self.stop {
            if bytes[i] != b'<' {
                i += 1;
                continue;
            }
            // Flush text before the '<'.
            if text_start < i {
                self.on_text(&html[text_start..i]);
            }
            text_start = i;
            let rest = &html[i..];
            if let Some(comment) = rest.strip_prefix("<!--") {
                i = match comment.find("-->") {
                    Some(end) => i + 4 + end + 3,
                    None => bytes.len(),
                };
                text_start = i;
                continue;
            }
            if rest.starts_with("<!") || rest.starts_with("<?") {
                i = match rest.find('>') {
                    Some(end) => i + end + 1,
                    None => bytes.len(),
                };
                text_start = i;
                continue;
            }
            match parse_tag(rest) {
                Some((tag, len)) => {
                    i += len;
                    text_start = i;
                    if !tag.closing && is_raw_skip(&tag.name) && !tag.self_closing {
                        // Skip to the matching end tag (case-insensitive) or the end.
                        let close = format!("</{}", tag.name);
                        i = match find_ascii_ci(&html[i..], &close) {
                            Some(pos) => {
                                let after = i + pos;
                                match html[after..].find('>') {
                                    Some(gt) => after + gt + 1,
                                    None => bytes.len(),
                                }
                            }
                            None => bytes.len(),
                        };
                        text_start = i;
                        continue;
                    }
                    if tag.closing {
                        self.on_close(&tag.name);
                    } else if self.header_block_behind_rule(&tag, &html[i..]) {
                        // Outlook's reply header: a rule, then "From: … Sent: …" in any
                        // language. Everything from here is history.
                        self.stop = true;
                    } else {
                        if tag.name == "table" && !self.skipping() {
                            // Bounded: a document of a million tables is not scanned a
                            // million times.
                            self.next_table_is_data =
                                self.table_scans < MAX_TABLE_SCANS && is_data_table(&html[i..]);
                            self.table_scans += 1;
                        }
                        self.on_open(&tag);
                    }
                }
                None => {
                    // A '<' that starts no tag is text.
                    i += 1;
                }
            }
        }
        if text_start < bytes.len() && !self.stop {
            self.on_text(&html[text_start..]);
        }
    }

    fn on_text(&mut self, raw: &str) {
        if self.skipping() {
            return;
        }
        let decoded = decode_entities(raw);
        let cleaned: String = decoded
            .chars()
            .filter(|c| {
                !matches!(
                    c,
                    '\u{200b}' | '\u{feff}' | '\u{ad}' | '\u{200c}' | '\u{200d}'
                )
            })
            .collect();
        if self.pre > 0 {
            let mut first = true;
            for line in cleaned.split('\n') {
                if !first {
                    self.w.line_break();
                }
                first = false;
                let line = line.trim_end_matches('\r');
                self.w.raw(line);
            }
        } else {
            self.w.text(&cleaned);
        }
    }

    fn push(&mut self, tag: &Tag, skip: bool) {
        if self.stack.len() >= MAX_DEPTH {
            return;
        }
        let cell = matches!(tag.name.as_str(), "td" | "th") && self.in_data_table();
        // Gmail and Apple Mail indent with a borderless blockquote: that is no quote.
        let quote = tag.name == "blockquote" && !skip && !tag.style().contains("border:none");
        if skip {
            self.skip_depth += 1;
        }
        if quote {
            self.w.block(2);
            self.w.quote_depth += 1;
        }
        self.stack.push(Open {
            name: tag.name.clone(),
            breaks: block_breaks(&tag.name),
            skip,
            cell,
            quote,
        });
    }

    /// In strip mode: `tag` is a rule or top-bordered block and a header block follows.
    /// Bounded like the table scans, so hostile input stays linear.
    fn header_block_behind_rule(&mut self, tag: &Tag, rest: &str) -> bool {
        if !self.opts.strip_quotes
            || self.skipping()
            || self.rule_scans >= MAX_RULE_SCANS
            || !opens_rule(tag)
        {
            return false;
        }
        self.rule_scans += 1;
        header_block_follows(rest)
    }

    fn is_quote_marker(&self, tag: &Tag) -> QuoteMark {
        if !self.opts.strip_quotes {
            return QuoteMark::None;
        }
        if let Some(id) = tag.attr("id") {
            let id = id.to_ascii_lowercase();
            // Outlook prefixes the ids of a quoted Outlook mail with "x_" (once per level).
            let id = id.trim_start_matches("x_");
            if id == "appendonsend"
                || id.starts_with("divrplyfwdmsg")
                || id == "mail-editor-reference-message-container"
                || id == "olk_src_body_section"
                || id == "zwchr"
            {
                return QuoteMark::StopHere;
            }
            if id == "signature" || id == "ms-outlook-mobile-signature" {
                return QuoteMark::Skip;
            }
            if id.contains("yahoo_quoted") {
                return QuoteMark::Skip;
            }
        }
        if tag
            .attr("data-marker")
            .is_some_and(|m| matches!(m, "__QUOTED_TEXT__" | "__HEADERS__" | "__DIVIDER__"))
            || tag.has_class("ms-outlook-mobile-reference-message")
        {
            return QuoteMark::StopHere;
        }
        if tag.has_class("gmail_quote")
            || tag.has_class("gmail_quote_container")
            || tag.has_class("gmail_attr")
            || tag.has_class("moz-cite-prefix")
            || tag.has_class_suffix("yahoo_quoted")
            || tag.has_class("gmail_signature")
            || tag.has_class("moz-signature")
            || tag.has_class("OutlookMessageHeader")
            || tag.has_class("protonmail_quote")
            || tag.has_class("protonmail_signature_block")
            || tag.has_class("zmail_extra")
            || tag.has_class("mail-quote-collapse")
            || tag.has_class("mailru-blockquote")
            || tag.attr("data-o-mail-quote-node").is_some()
        {
            return QuoteMark::Skip;
        }
        if tag.name == "blockquote"
            && tag
                .attr("type")
                .is_some_and(|t| t.eq_ignore_ascii_case("cite"))
        {
            return QuoteMark::Skip;
        }
        QuoteMark::None
    }

    fn on_open(&mut self, tag: &Tag) {
        let name = tag.name.as_str();
        if name == "head" {
            // Skipped until </head>, or until <body> for documents that never close it.
            self.push(tag, true);
            return;
        }
        if name == "body" {
            self.close_to("head");
        }
        if self.skipping() {
            if !is_void(name) && !tag.self_closing {
                self.push(tag, false);
            }
            return;
        }
        let hidden = tag.attr("style").is_some_and(|s| {
            let s: String = s
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect::<String>()
                .to_ascii_lowercase();
            s.contains("display:none") || s.contains("mso-hide:all")
        });
        match self.is_quote_marker(tag) {
            QuoteMark::StopHere => {
                self.stop = true;
                return;
            }
            QuoteMark::Skip => {
                if !is_void(name) && !tag.self_closing {
                    self.push(tag, true);
                }
                return;
            }
            QuoteMark::None => {}
        }
        if hidden && !is_void(name) && !tag.self_closing {
            self.push(tag, true);
            return;
        }
        // Implicitly closed elements of sloppy HTML.
        match name {
            "p" => self.close_if_top("p"),
            "li" => self.close_within("li", &["ul", "ol"]),
            "td" | "th" => {
                self.close_within("td", &["tr", "table"]);
                self.close_within("th", &["tr", "table"]);
            }
            "tr" => self.close_within("tr", &["table"]),
            "dt" | "dd" => {
                self.close_within("dt", &["dl"]);
                self.close_within("dd", &["dl"]);
            }
            _ => {}
        }
        let in_cell = self.in_cell();
        let breaks = block_breaks(name);
        let breaks = if (name == "p" && tag.has_class("MsoNormal"))
            || (matches!(name, "ul" | "ol") && !self.lists.is_empty())
        {
            1
        } else {
            breaks
        };
        if breaks > 0 {
            if in_cell && !matches!(name, "tr" | "table") {
                self.w.space = true;
            } else {
                self.w.block(breaks);
            }
        }
        match name {
            "br" => {
                if in_cell {
                    self.w.space = true;
                } else {
                    self.w.line_break();
                }
            }
            "hr" => self.w.block(2),
            "ul" | "ol" => {
                let start = tag
                    .attr("start")
                    .and_then(|s| s.trim().parse::<u32>().ok())
                    .unwrap_or(1);
                if self.lists.len() < MAX_DEPTH {
                    self.lists.push((name == "ol", start.saturating_sub(1)));
                }
            }
            "li" => {
                let depth = self.lists.len().max(1);
                let indent = "  ".repeat(depth - 1);
                let marker = match self.lists.last_mut() {
                    Some((true, n)) => {
                        *n = n.saturating_add(1);
                        format!("{indent}{n}. ")
                    }
                    _ => format!("{indent}- "),
                };
                self.w.raw(&marker);
            }
            "tr" => self.cells.push(0),
            "td" | "th" if self.in_data_table() => {
                if let Some(n) = self.cells.last() {
                    if *n > 0 {
                        self.w.cell_sep = true;
                    }
                }
            }
            "a" => {
                let href = unwrap_safelink(tag.attr("href").unwrap_or("").trim());
                self.w.flush_breaks();
                self.link = Some((href, self.w.out.len()));
            }
            "img" if self.opts.image_alt => {
                if let Some(alt) = tag.attr("alt").map(str::trim).filter(|a| !a.is_empty()) {
                    self.w.text(&format!("[{alt}]"));
                }
            }
            "pre" => self.pre += 1,
            _ => {}
        }
        if !is_void(name) && !tag.self_closing {
            if name == "table" {
                if self.stack.len() >= MAX_DEPTH {
                    return;
                }
                self.tables.push(self.next_table_is_data);
            }
            // Remember where a cell's text starts to know whether it produced any.
            self.push(tag, false);
            if let Some(last) = self.stack.last_mut() {
                last.breaks = breaks;
                if matches!(name, "td" | "th") {
                    last.name = format!("{}@{}", name, self.w.out.len());
                }
            }
        }
    }

    fn on_close(&mut self, name: &str) {
        if name == "br" {
            // `</br>` is treated as `<br>` by browsers.
            if !self.skipping() {
                self.w.line_break();
            }
            return;
        }
        let Some(pos) = self
            .stack
            .iter()
            .rposition(|o| o.name == name || o.name.split('@').next() == Some(name))
        else {
            return;
        };
        while self.stack.len() > pos {
            self.pop();
        }
    }

    fn close_to(&mut self, name: &str) {
        if let Some(pos) = self.stack.iter().rposition(|o| o.name == name) {
            while self.stack.len() > pos {
                self.pop();
            }
        }
    }

    fn close_if_top(&mut self, name: &str) {
        if self.stack.last().is_some_and(|o| o.name == name) {
            self.pop();
        }
    }

    /// Closes the nearest open `name` unless one of `scopes` is nearer.
    fn close_within(&mut self, name: &str, scopes: &[&str]) {
        for (i, o) in self.stack.iter().enumerate().rev() {
            let base = o.name.split('@').next().unwrap_or("");
            if base == name {
                while self.stack.len() > i {
                    self.pop();
                }
                return;
            }
            if scopes.contains(&base) {
                return;
            }
        }
    }

    fn pop(&mut self) {
        let Some(open) = self.stack.pop() else {
            return;
        };
        if open.skip {
            self.skip_depth = self.skip_depth.saturating_sub(1);
            return;
        }
        if self.skipping() {
            return;
        }
        let (base, cell_start) = match open.name.split_once('@') {
            Some((b, s)) => (b.to_string(), s.parse::<usize>().ok()),
            None => (open.name.clone(), None),
        };
        if open.quote {
            self.w.quote_depth = self.w.quote_depth.saturating_sub(1);
        }
        match base.as_str() {
            "a" => {
                if let Some((href, start)) = self.link.take() {
                    let text = self.w.out.get(start..).unwrap_or("").trim().to_string();
                    let show = !href.is_empty()
                        && !href.starts_with('#')
                        && !href.to_ascii_lowercase().starts_with("javascript:")
                        && !text.is_empty()
                        && text != href
                        && href.strip_prefix("mailto:") != Some(text.as_str())
                        && href.strip_suffix('/') != Some(text.as_str());
                    if show {
                        self.w.raw(&format!(" ({href})"));
                    }
                }
            }
            "ul" | "ol" => {
                self.lists.pop();
            }
            "pre" => self.pre = self.pre.saturating_sub(1),
            "table" => {
                self.tables.pop();
            }
            "tr" => {
                self.cells.pop();
                self.w.cell_sep = false;
            }
            "td" | "th" => {
                let produced = cell_start.is_some_and(|s| self.w.out.len() > s);
                if produced {
                    if let Some(n) = self.cells.last_mut() {
                        *n += 1;
                    }
                }
            }
            _ => {}
        }
        let breaks = open.breaks;
        if breaks > 0 {
            if self.in_cell() && !matches!(base.as_str(), "tr" | "table") {
                self.w.space = true;
            } else {
                self.w.block(breaks);
            }
        }
    }
}

/// How many tables get their look-ahead scan; later ones render as layout tables.
const MAX_TABLE_SCANS: usize = 64;
/// How many rules / bordered blocks get their look-ahead for a header block.
const MAX_RULE_SCANS: usize = 16;
/// How far ahead that look-ahead reads.
const RULE_SCAN_BYTES: usize = 3072;

/// `<hr>`, or a block with a top border only (Outlook desktop's `border:none;border-top:solid
/// #E1E1E1 1.0pt`, Outlook mobile's `border-style:solid none none`): where Outlook puts the
/// quoted message's header block.
fn opens_rule(tag: &Tag) -> bool {
    match tag.name.as_str() {
        "hr" => true,
        "div" | "p" => {
            let style = tag.style();
            style.contains("border-top:") || style.contains("border-style:solidnonenone")
        }
        _ => false,
    }
}

/// Whether the HTML right after a rule starts with a header block ("From: … Sent: … To: …
/// Subject: …" in any language, see [`header_block_at`]).
fn header_block_follows(rest: &str) -> bool {
    let mut end = rest.len().min(RULE_SCAN_BYTES);
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    // No label colon nearby (a newsletter's rules): nothing to convert.
    let near = rest.as_bytes()[..end.min(1024)]
        .iter()
        .position(|&b| b == b':');
    if near.is_none() && !rest[..end].contains('：') {
        return false;
    }
    let text = html_to_text(&rest[..end], Html2TextOptions::default());
    let lines: Vec<&str> = text.split('\n').collect();
    lines
        .iter()
        .position(|l| !l.trim().is_empty())
        .is_some_and(|first| header_block_at(&lines, first))
}
/// How far ahead a table's look-ahead reads.
const TABLE_SCAN_BYTES: usize = 64 * 1024;

/// Whether the table starting here holds data (rows of several cells) rather than layout
/// (one cell per row, or nested tables, as newsletters and signatures use). `rest` starts right
/// after the `<table …>` tag.
fn is_data_table(rest: &str) -> bool {
    let b = rest.as_bytes();
    let limit = b.len().min(TABLE_SCAN_BYTES);
    let mut i = 0;
    let mut cells_in_row = 0usize;
    let mut max_cells = 0usize;
    while i < limit {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let closing = b.get(i + 1) == Some(&b'/');
        let start = if closing { i + 2 } else { i + 1 };
        let mut end = start;
        while end < b.len() && end - start < 8 && b[end].is_ascii_alphanumeric() {
            end += 1;
        }
        let name = &b[start..end];
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        if is(b"table") {
            if closing {
                break;
            }
            return false; // nested table: layout
        } else if is(b"tr") && !closing {
            cells_in_row = 0;
        } else if (is(b"td") || is(b"th")) && !closing {
            cells_in_row += 1;
            max_cells = max_cells.max(cells_in_row);
        }
        i = end.max(i + 1);
    }
    max_cells > 1
}

enum QuoteMark {
    None,
    Skip,
    StopHere,
}

/// Outlook's "Safe Links" wrap every URL in a long redirect; the ticket shows the real target.
pub fn unwrap_safelink(href: &str) -> String {
    let lower = href.to_ascii_lowercase();
    if !lower.contains(".safelinks.protection.outlook.com/") {
        return href.to_string();
    }
    let Some(q) = href.find('?') else {
        return href.to_string();
    };
    for pair in href[q + 1..].split('&') {
        if let Some(v) = pair.strip_prefix("url=") {
            let decoded = percent_decode(v);
            if decoded.starts_with("http://") || decoded.starts_with("https://") {
                return decoded;
            }
        }
    }
    href.to_string()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Parses a tag at the start of `s` (which begins with '<'). Returns the tag and its length in
/// bytes, or None when this '<' starts no tag.
fn parse_tag(s: &str) -> Option<(Tag, usize)> {
    let b = s.as_bytes();
    let mut i = 1;
    let closing = b.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let name_start = i;
    if !b.get(i).is_some_and(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b':' | b'-' | b'_')) {
        i += 1;
    }
    let name = s[name_start..i].to_ascii_lowercase();
    let mut attrs = Vec::new();
    let mut self_closing = false;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            if b[i] == b'/' {
                self_closing = true;
            }
            i += 1;
        }
        if i >= b.len() {
            // Unterminated tag: the rest of the document is swallowed, as browsers do.
            return Some((
                Tag {
                    name,
                    closing,
                    self_closing,
                    attrs,
                },
                b.len(),
            ));
        }
        if b[i] == b'>' {
            i += 1;
            break;
        }
        self_closing = false;
        let an_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        // Attribute names are ASCII in practice; a multi-byte char boundary is respected
        // because we only stop on ASCII bytes.
        let aname = s[an_start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if b.get(i) == Some(&b'=') {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if let Some(&q) = b.get(i).filter(|c| **c == b'"' || **c == b'\'') {
                i += 1;
                let v_start = i;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                value = decode_entities(&s[v_start..i]);
                if i < b.len() {
                    i += 1;
                }
            } else {
                let v_start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                value = decode_entities(&s[v_start..i]);
            }
        }
        if !aname.is_empty() && attrs.len() < 64 {
            attrs.push((aname, value));
        }
    }
    Some((
        Tag {
            name,
            closing,
            self_closing,
            attrs,
        },
        i,
    ))
}

/// Decodes `&name;`, `&#123;` and `&#x7B;` references; anything unknown stays as written.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        match decode_entity(rest) {
            Some((text, len)) => {
                out.push_str(text.as_str());
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(html: &str) -> String {
        html_to_text(html, Html2TextOptions::default())
    }

    #[test]
    fn paragraphs_and_breaks() {
        assert_eq!(
            t("<p>Hello   world</p><p>Second<br>line</p>"),
            "Hello world\n\nSecond\nline"
        );
    }

    #[test]
    fn lists() {
        assert_eq!(
            t("<ul><li>one<li>two</ul><ol><li>a</li><li>b</li></ol>"),
            "- one\n- two\n\n1. a\n2. b"
        );
        assert_eq!(
            t("<ul><li>one<ul><li>inner</li></ul></li></ul>"),
            "- one\n  - inner"
        );
    }

    #[test]
    fn links() {
        assert_eq!(
            t(r#"See <a href="https://x.example/a">the docs</a>."#),
            "See the docs (https://x.example/a)."
        );
        assert_eq!(
            t(r#"<a href="https://x.example/">https://x.example/</a>"#),
            "https://x.example/"
        );
        assert_eq!(t(r#"<a href="mailto:a@b.c">a@b.c</a>"#), "a@b.c");
    }

    #[test]
    fn safelinks_are_unwrapped() {
        let href = "https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fportal.example.com%2Fticket%3Fid%3D5&data=05%7C02&reserved=0";
        assert_eq!(
            unwrap_safelink(href),
            "https://portal.example.com/ticket?id=5"
        );
        assert_eq!(
            t(&format!(r#"<a href="{href}">portal</a>"#)),
            "portal (https://portal.example.com/ticket?id=5)"
        );
        assert_eq!(
            unwrap_safelink("https://x.example/?url=%ZZ"),
            "https://x.example/?url=%ZZ"
        );
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%4"), "a%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("%é%"), "%é%");
    }

    #[test]
    fn tables() {
        assert_eq!(
            t("<table><tr><th>Name</th><th>Qty</th></tr><tr><td>Toner</td><td>2</td></tr></table>"),
            "Name | Qty\nToner | 2"
        );
        assert_eq!(
            t("<table><tr><td></td><td>x</td><td> </td></tr></table>"),
            "x"
        );
    }

    #[test]
    fn skips_head_script_style() {
        assert_eq!(
            t("<html><head><title>T</title><style>p{color:red}</style></head><body><script>alert(1)</script><p>Hi</p></body></html>"),
            "Hi"
        );
        assert_eq!(t("<head><meta charset=utf-8><body>Text"), "Text");
    }

    #[test]
    fn entities() {
        assert_eq!(
            t("a &amp; b &lt;c&gt; &eacute;&#233;&#xE9; &nbsp;x &bogus; &amp"),
            "a & b <c> ééé  x &bogus; &"
        );
    }

    #[test]
    fn headings_and_blockquote() {
        assert_eq!(t("<h1>Title</h1>text"), "Title\n\ntext");
        assert_eq!(
            t("<p>new</p><blockquote>old<br>older</blockquote>"),
            "new\n\n> old\n> older"
        );
    }

    #[test]
    fn strip_quotes_mode() {
        let o = Html2TextOptions {
            strip_quotes: true,
            image_alt: false,
        };
        let gmail = r#"<div dir="ltr">Thanks!</div><br><div class="gmail_quote"><div class="gmail_attr">On Mon wrote:</div><blockquote class="gmail_quote">old</blockquote></div>"#;
        assert_eq!(html_to_text(gmail, o), "Thanks!");
        let owa = r#"<div>New text</div><div id="appendonsend"></div><hr><div id="divRplyFwdMsg"><b>From:</b> x</div><div>old</div>"#;
        assert_eq!(html_to_text(owa, o), "New text");
        let tb = r#"<p>Reply</p><div class="moz-cite-prefix">On 1/1 X wrote:<br></div><blockquote type="cite">old</blockquote>"#;
        assert_eq!(html_to_text(tb, o), "Reply");
    }

    #[test]
    fn strip_quotes_more_clients() {
        let o = Html2TextOptions {
            strip_quotes: true,
            image_alt: false,
        };
        let cases = [
            // Yahoo prefixes its classes
            r#"<div>New</div><div id="ydp5d2yahoo_quoted_0815" class="ydp5d2yahoo_quoted"><div>On Monday … wrote:</div><blockquote>old</blockquote></div>"#,
            // Outlook for Mac
            r#"<div>New</div><span id="OLK_SRC_BODY_SECTION"><div><b>Fra: </b>X</div><div>old</div></span><p>older</p>"#,
            // Zimbra
            r#"<div>New</div><hr id="zwchr" data-marker="__DIVIDER__"><div data-marker="__HEADERS__"><b>De: </b>X</div><div data-marker="__QUOTED_TEXT__">old</div>"#,
            // mail.ru
            r#"<div>New</div><div class="mail-quote-collapse">Понедельник, 23 ноября 2026, 10:00 +03:00 от X:<blockquote data-o-mail-quote-node="1">old</blockquote></div>"#,
            // Outlook desktop in Finnish: a top border, then a header block
            r#"<p>New</p><div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm"><p><b>Lähettäjä:</b> X &lt;x@example.com&gt;<br><b>Lähetetty:</b> maanantai 23. marraskuuta 2026 10.00<br><b>Vastaanottaja:</b> Y<br><b>Aihe:</b> Z</p></div><p>old</p>"#,
            // an <hr>, then a header block in Turkish
            r#"<p>New</p><hr size=2 width="100%" align=center tabindex=-1><span><b>Kimden:</b> X<br><b>Gönderildi:</b> 23 Kasım 2026 Pazartesi 10:00<br><b>Kime:</b> Y<br><b>Konu:</b> Z</span><p>old</p>"#,
            // Outlook mobile
            r#"<div>New</div><div style="border-width:1pt medium medium;border-style:solid none none"><div class="ms-outlook-mobile-reference-message"><b>От: </b>X<br><b>Тема: </b>Z</div></div><div>old</div>"#,
        ];
        for html in cases {
            assert_eq!(html_to_text(html, o), "New", "{html}");
        }
        // A rule or border without a header block below it is just layout.
        let html = r#"<p>New</p><hr><p>More text</p><div style="border-top:1px solid #ccc">Footer: none</div>"#;
        assert_eq!(html_to_text(html, o), "New\n\nMore text\n\nFooter: none");
        // Gmail's indentation is no quote.
        let html = r#"<div>Steps:</div><blockquote style="margin:0 0 0 40px;border:none;padding:0px"><div>restart the router</div></blockquote><div>Thanks</div>"#;
        assert_eq!(
            html_to_text(html, o),
            "Steps:\n\nrestart the router\n\nThanks"
        );
        assert_eq!(t(html), "Steps:\n\nrestart the router\n\nThanks");
    }

    #[test]
    fn broken_html_never_fails() {
        for s in [
            "<",
            "<<<>>>",
            "<a href='x",
            "<!-- never closed",
            "<p><b><i>unclosed",
            "</div></div></p>text",
            "<script>",
            "&#xFFFFFFFF; &#0; &#55296;",
            "<td>cell outside table</td>",
            "<ul><li>x</ul></li></ol>",
        ] {
            let _ = t(s);
        }
        assert_eq!(t("a < b and c > d"), "a < b and c > d");
        assert_eq!(t("<p><b>bold</p>after"), "bold\n\nafter");
    }

    #[test]
    fn outlook_mso_paragraphs_are_single_lines() {
        let html = r#"<p class=MsoNormal>Hello,<o:p></o:p></p><p class=MsoNormal><o:p>&nbsp;</o:p></p><p class=MsoNormal>The printer is broken.<o:p></o:p></p>"#;
        assert_eq!(t(html), "Hello,\n\nThe printer is broken.");
        let html =
            "<p class=MsoNormal>Merci,<o:p></o:p></p>\n<p class=MsoNormal>Julien<o:p></o:p></p>";
        assert_eq!(t(html), "Merci,\nJulien");
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let html = "<div>".repeat(100_000) + "x" + &"</div>".repeat(100_000);
        assert_eq!(t(&html), "x");
    }
}
