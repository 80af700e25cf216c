//! W4 / W6: rich text in site, bot and agent messages, rendered safely.
//!
//! Sources are Markdown. The output is HTML cleaned by ammonia with a short allow-list
//! (bold, italic, links, lists, images, paragraphs, line breaks), so stored text can never
//! carry a script into the widget or the inbox.

use std::sync::LazyLock;

/// Renders Markdown to sanitized HTML.
pub fn render_markdown(source: &str) -> String {
    if is_plain_line(source) {
        return format!("<p>{source}</p>\n");
    }
    parse_and_clean(source)
}

fn parse_and_clean(source: &str) -> String {
    let parser =
        pulldown_cmark::Parser::new_ext(source, pulldown_cmark::Options::ENABLE_STRIKETHROUGH);
    let mut html = String::with_capacity(source.len() + 16);
    pulldown_cmark::html::push_html(&mut html, parser);
    sanitize_html(&html)
}

/// Whether `source` is one line of words and everyday punctuation that Markdown turns into
/// one paragraph of the same text, which the sanitizer then leaves as it is. Most chat
/// lines are, and for them parsing and cleaning (1.6 µs a line, against 0.06 µs for this
/// check; docs/performance.md, round 11) would only give `<p>{source}</p>\n`.
///
/// The line starts with a letter (no list, heading, quote or indented code), does not end
/// in a space (no trimming), and holds only letters, digits, spaces and punctuation that
/// means nothing to Markdown or HTML inside a line: no `*`, `_`, `~`, `` ` ``, `[`, `]`,
/// `\`, `<`, `>` or `&`, no line breaks or tabs, no other spaces (the sanitizer writes a
/// no-break space as `&nbsp;`). A test renders every such line both ways.
fn is_plain_line(source: &str) -> bool {
    source.chars().next().is_some_and(char::is_alphabetic)
        && !source.ends_with(' ')
        && source.chars().all(|c| {
            c.is_alphanumeric()
                || matches!(
                    c,
                    ' ' | '.'
                        | ','
                        | ';'
                        | ':'
                        | '?'
                        | '!'
                        | '\''
                        | '"'
                        | '('
                        | ')'
                        | '/'
                        | '%'
                        | '+'
                        | '-'
                        | '='
                        | '@'
                        | '$'
                        | '#'
                )
        })
}

/// The allow-list, built once: building it takes longer than cleaning a chat line with it
/// (see docs/performance.md).
static CLEANER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::default();
    b.tags(
        [
            "p", "br", "strong", "b", "em", "i", "del", "a", "ul", "ol", "li", "img", "code",
        ]
        .into_iter()
        .collect(),
    )
    .url_schemes(["http", "https", "mailto", "tel"].into_iter().collect())
    .link_rel(Some("noopener noreferrer nofollow"))
    .set_tag_attribute_value("a", "target", "_blank")
    .add_tag_attributes("img", ["src", "alt"]);
    b
});

/// Cleans HTML down to the allow-list; links open in a new tab without an opener.
pub fn sanitize_html(html: &str) -> String {
    CLEANER.clean(html).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_formatting() {
        let html = render_markdown("**bold** _it_ [link](https://example.com)\n\n- a\n- b\n\n![x](https://example.com/a.png)");
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("<em>it</em>"));
        assert!(html.contains("href=\"https://example.com\""));
        assert!(html.contains("rel=\"noopener noreferrer nofollow\""));
        assert!(html.contains("<li>a</li>"));
        assert!(html.contains("<img src=\"https://example.com/a.png\" alt=\"x\">"));
    }

    #[test]
    fn plain_lines_skip_the_parser_and_render_the_same() {
        for line in [
            "Hello, is anyone there?",
            "t=abcdefghijklmnop;v;c12-3",
            "Order #123 costs $40 (50% off) - ok: yes/no = \"maybe\" @ 5pm!",
            "Héllo wörld ünïcode 東京",
            "See https://example.com/a?b=c or www.example.com, mail me@example.com",
        ] {
            assert!(is_plain_line(line), "{line}");
            assert_eq!(render_markdown(line), parse_and_clean(line), "{line}");
        }
        for line in [
            "",
            " leading",
            "trailing ",
            "1. list",
            "- list",
            "# heading",
            "> quote",
            "**bold**",
            "a_b_c",
            "a & b",
            "a < b",
            "two\nlines",
            "no\u{a0}break",
            "tab\there",
            "[link](x)",
            "back\\slash",
            "~~gone~~",
            "`code`",
        ] {
            assert!(!is_plain_line(line), "{line:?}");
        }
    }

    proptest::proptest! {
        /// Every line the fast path takes renders exactly as Markdown and the sanitizer
        /// would render it.
        #[test]
        fn the_fast_path_agrees_with_the_parser(
            line in "[a-zA-Zé東][a-zA-Z0-9é東 .,;:?!'\"()/%+=@$#-]{0,40}",
        ) {
            if is_plain_line(&line) {
                proptest::prop_assert_eq!(render_markdown(&line), parse_and_clean(&line));
            }
        }
    }

    #[test]
    fn strips_scripts_and_handlers() {
        let html = render_markdown(
            "<script>alert(1)</script><img src=x onerror=alert(1)>[x](javascript:alert(1))",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("onerror"));
        assert!(!html.contains("href=\"javascript:"), "{html}");
    }
}
