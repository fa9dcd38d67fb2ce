//! Display masks for roles that may not see PII. All helpers count `char`s, never bytes, so
//! CJK and other multi-byte text is cut on character boundaries. Short values are masked more
//! aggressively so that a mask never reveals most of a value.

const STAR: char = '*';

/// Keeps the first `keep_start` and last `keep_end` characters and replaces each character in
/// between with `*`. If that would leave fewer than half of the characters (rounded up) masked,
/// everything is masked instead.
pub fn mask_middle(value: &str, keep_start: usize, keep_end: usize) -> String {
    let characters: Vec<char> = value.chars().collect();
    let total = characters.len();
    let kept = keep_start.saturating_add(keep_end);
    if kept > total / 2 && kept > 0 {
        return stars(total);
    }
    let mut masked = String::with_capacity(value.len());
    masked.extend(&characters[..keep_start]);
    masked.extend(std::iter::repeat_n(STAR, total - kept));
    masked.extend(&characters[total - keep_end..]);
    masked
}

/// Phone numbers: `13812345678` → `138****5678`.
///
/// - 11 or more characters: first 3 and last 4 kept, the rest masked;
/// - 7 to 10: only the last 4 kept;
/// - 4 to 6: only the last 2 kept;
/// - shorter: fully masked.
///
/// Pass the normalised number (digits) for a canonical result; separators count as characters.
pub fn mask_phone(phone: &str) -> String {
    let phone = phone.trim();
    let characters: Vec<char> = phone.chars().collect();
    let total = characters.len();
    let (keep_start, keep_end) = match total {
        11.. => (3, 4),
        7..=10 => (0, 4),
        4..=6 => (0, 2),
        _ => (0, 0),
    };
    let mut masked = String::with_capacity(phone.len());
    masked.extend(&characters[..keep_start]);
    masked.extend(std::iter::repeat_n(STAR, total - keep_start - keep_end));
    masked.extend(&characters[total - keep_end..]);
    masked
}

/// Personal names: first character kept, every other character masked
/// (`张三丰` → `张**`, `张三` → `张*`, `Alice` → `A****`); a one-character name is fully masked.
pub fn mask_name(name: &str) -> String {
    let name = name.trim();
    let total = name.chars().count();
    if total <= 1 {
        return stars(total);
    }
    let mut characters = name.chars();
    let mut masked = String::with_capacity(name.len());
    masked.extend(characters.next());
    masked.extend(std::iter::repeat_n(STAR, total - 1));
    masked
}

/// Addresses: keeps the first `visible_chars` characters (at most half of the address) and
/// replaces the rest by a fixed `****`, so the length of the address is not revealed either.
/// `mask_address("北京市朝阳区建国路88号", 6)` → `北京市朝阳区****`.
pub fn mask_address(address: &str, visible_chars: usize) -> String {
    let address = address.trim();
    let total = address.chars().count();
    if total == 0 {
        return String::new();
    }
    let visible = visible_chars.min(total / 2);
    let mut masked: String = address.chars().take(visible).collect();
    masked.push_str("****");
    masked
}

/// E-mail addresses: first character of the local part kept, then a fixed `****`, domain kept:
/// `alice@example.com` → `a****@example.com`. A one-character local part is masked completely;
/// a value without `@` is masked like a name.
pub fn mask_email(email: &str) -> String {
    let email = email.trim();
    let Some((local, domain)) = email.rsplit_once('@') else {
        return mask_name(email);
    };
    let mut local_characters = local.chars();
    let masked_local = match (local_characters.next(), local_characters.next()) {
        (None, _) => String::new(),
        (Some(_), None) => STAR.to_string(),
        (Some(first), Some(_)) => format!("{first}****"),
    };
    format!("{masked_local}@{domain}")
}

fn stars(count: usize) -> String {
    std::iter::repeat_n(STAR, count).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone(" 13812345678 "), "138****5678");
        assert_eq!(mask_phone("+8613812345678"), "+86*******5678");
        assert_eq!(mask_phone("5551234"), "***1234");
        assert_eq!(mask_phone("12345"), "***45");
        assert_eq!(mask_phone("123"), "***");
        assert_eq!(mask_phone(""), "");
        assert_eq!(mask_phone("１３８１２３４５６７８"), "１３８****５６７８");
    }

    #[test]
    fn names() {
        assert_eq!(mask_name("张三丰"), "张**");
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("张"), "*");
        assert_eq!(mask_name("Alice"), "A****");
        assert_eq!(mask_name(" Bo "), "B*");
        assert_eq!(mask_name(""), "");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
    }

    #[test]
    fn addresses() {
        assert_eq!(
            mask_address("北京市朝阳区建国路88号", 6),
            "北京市朝阳区****"
        );
        assert_eq!(mask_address("北京", 6), "北****");
        assert_eq!(mask_address("1 Infinite Loop, Cupertino", 6), "1 Infi****");
        assert_eq!(mask_address("x", 6), "****");
        assert_eq!(mask_address("  ", 6), "");
    }

    #[test]
    fn emails() {
        assert_eq!(mask_email("alice@example.com"), "a****@example.com");
        assert_eq!(mask_email("a@example.com"), "*@example.com");
        assert_eq!(mask_email("@example.com"), "@example.com");
        assert_eq!(mask_email("张三@例子.中国"), "张****@例子.中国");
        assert_eq!(mask_email("not-an-email"), "n***********");
        assert_eq!(mask_email("we\"ird@x@example.com"), "w****@example.com");
    }

    #[test]
    fn middle() {
        assert_eq!(
            mask_middle("110101199003074518", 4, 4),
            "1101**********4518"
        );
        assert_eq!(mask_middle("abcdef", 2, 2), "******");
        assert_eq!(mask_middle("abcdef", 1, 2), "a***ef");
        assert_eq!(mask_middle("张三丰", 1, 0), "张**");
        assert_eq!(mask_middle("", 0, 0), "");
        assert_eq!(mask_middle("ab", 0, 0), "**");
        assert_eq!(mask_middle("ab", usize::MAX, usize::MAX), "**");
    }

    #[test]
    fn never_panics_on_unicode_edge_cases() {
        for value in ["é", "👍🏽", "a\u{301}", "\u{0}", "🇨🇳🇨🇳🇨🇳", "ab@", "@"]
        {
            let _ = mask_phone(value);
            let _ = mask_name(value);
            let _ = mask_email(value);
            let _ = mask_address(value, 3);
            let _ = mask_middle(value, 1, 1);
        }
    }
}
