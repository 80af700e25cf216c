//! W4 / W6: rich text in site, bot and agent messages, rendered safely.
//!
//! Sources are Markdown. The output is HTML cleaned by ammonia with a short allow-list
//! (bold, italic, links, lists, images, paragraphs, line breaks), so stored text can never
//! carry a script into the widget or the inbox.

use std::sync::LazyLock;

/// Renders Markdown to sanitized HTML.
pub fn render_markdown(source: &str) -> String {
    let parser =
        pulldown_cmark::Parser::new_ext(source, pulldown_cmark::Options::ENABLE_STRIKETHROUGH);
    let mut html = String::with_capacity(source.len() + 16);
    pulldown_cmark::html::push_html(&mut html, parser);
    sanitize_html(&html)
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
    fn strips_scripts_and_handlers() {
        let html = render_markdown(
            "<script>alert(1)</script><img src=x onerror=alert(1)>[x](javascript:alert(1))",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("onerror"));
        assert!(!html.contains("href=\"javascript:"), "{html}");
    }
}
