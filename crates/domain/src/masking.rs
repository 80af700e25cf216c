//! S1: card numbers are masked before a message is stored, indexed, emailed or shown.
//!
//! A candidate is a run of 13–19 digits, optionally split into groups by single spaces or
//! dashes, that passes the Luhn check. All digits but the last four become `*`; the
//! separators stay so the text keeps its shape.

/// Masks every Luhn-valid card number in `text`. Returns the text unchanged (borrowed
/// semantics are not worth it here: messages are short) when there is none.
pub fn mask_card_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<char> = chars.clone();
    let mut i = 0;
    while i < chars.len() {
        // A candidate must start at a digit that is not preceded by a digit or a letter/digit
        // joined word (so "ab1234..." still counts, but a digit run's middle does not).
        if !chars[i].is_ascii_digit() || (i > 0 && chars[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        // Greedily collect digits and single separators between digits.
        let mut j = i;
        let mut digit_positions = Vec::new();
        while j < chars.len() {
            let c = chars[j];
            if c.is_ascii_digit() {
                digit_positions.push(j);
                j += 1;
            } else if (c == ' ' || c == '-')
                && j + 1 < chars.len()
                && chars[j + 1].is_ascii_digit()
                && j > i
                && chars[j - 1].is_ascii_digit()
            {
                j += 1;
            } else {
                break;
            }
            if digit_positions.len() > 19 {
                break;
            }
        }
        // Try the longest valid prefix of 13..=19 digits that ends at a digit boundary
        // (not followed directly by another digit).
        let mut masked = false;
        let max = digit_positions.len().min(19);
        for n in (13..=max).rev() {
            let end = digit_positions[n - 1];
            let followed_by_digit = chars.get(end + 1).is_some_and(|c| c.is_ascii_digit());
            if followed_by_digit {
                continue;
            }
            let digits: Vec<u32> = digit_positions[..n]
                .iter()
                .map(|&p| chars[p].to_digit(10).unwrap_or(0))
                .collect();
            if luhn_valid(&digits) {
                for &p in &digit_positions[..n - 4] {
                    out[p] = '*';
                }
                i = end + 1;
                masked = true;
                break;
            }
        }
        if !masked {
            // Skip past this digit run's first group.
            i = digit_positions
                .last()
                .map(|p| p + 1)
                .unwrap_or(i + 1)
                .max(i + 1);
        }
    }
    out.into_iter().collect()
}

fn luhn_valid(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if !i.is_multiple_of(2) {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn masks_plain_and_grouped_numbers() {
        assert_eq!(mask_card_numbers("4111111111111111"), "************1111");
        assert_eq!(
            mask_card_numbers("card 4111 1111 1111 1111 ok"),
            "card **** **** **** 1111 ok"
        );
        assert_eq!(
            mask_card_numbers("4111-1111-1111-1111"),
            "****-****-****-1111"
        );
        // Amex, 15 digits.
        assert_eq!(mask_card_numbers("378282246310005"), "***********0005");
    }

    #[test]
    fn leaves_non_cards_alone() {
        // Fails Luhn.
        assert_eq!(mask_card_numbers("4111111111111112"), "4111111111111112");
        // Too short (order numbers, phones).
        assert_eq!(
            mask_card_numbers("order 123456789012"),
            "order 123456789012"
        );
        assert_eq!(mask_card_numbers("+46 70 123 45 67"), "+46 70 123 45 67");
        assert_eq!(mask_card_numbers(""), "");
        assert_eq!(mask_card_numbers("héllo wörld 🙂"), "héllo wörld 🙂");
    }

    #[test]
    fn masks_several_in_one_message() {
        assert_eq!(
            mask_card_numbers("a 4111111111111111 b 5500 0000 0000 0004"),
            "a ************1111 b **** **** **** 0004"
        );
    }

    proptest! {
        #[test]
        fn never_changes_length_or_non_digits(s in "\\PC{0,200}") {
            let m = mask_card_numbers(&s);
            prop_assert_eq!(m.chars().count(), s.chars().count());
            for (a, b) in s.chars().zip(m.chars()) {
                if a != b { prop_assert!(a.is_ascii_digit() && b == '*'); }
            }
        }

        #[test]
        fn any_luhn_valid_number_is_masked(body in proptest::collection::vec(0u32..10, 12..=18)) {
            // Append the check digit that makes it Luhn-valid.
            let mut digits = body.clone();
            digits.push(0);
            let check = (0..10).find(|d| { digits.pop(); digits.push(*d); luhn_valid(&digits) }).unwrap();
            digits.pop(); digits.push(check);
            let s: String = digits.iter().map(|d| char::from_digit(*d, 10).unwrap()).collect();
            let m = mask_card_numbers(&format!("x {s} y"));
            prop_assert!(!m.contains(&s));
            let tail = format!("{} y", &s[s.len() - 4..]);
            prop_assert!(m.ends_with(&tail));
        }
    }
}
