//! The reason Directus gives for a JSON body it cannot parse: body-parser hands the text to
//! V8's `JSON.parse` (Node 20, the runtime of Directus 12.4.0), and Directus puts the
//! `SyntaxError`'s message in `INVALID_PAYLOAD` (`api/src/app.ts`). This is V8's parser
//! (`src/json/json-parser.cc`) reduced to where it stops and what it says there; positions
//! count UTF-16 code units, as JavaScript strings do.

/// V8's message for `JSON.parse(text)`, or None when V8 parses it.
pub fn v8_message(text: &str) -> Option<String> {
    let units: Vec<u16> = text.encode_utf16().collect();
    let mut p = Parser {
        s: &units,
        pos: 0,
        source: text,
    };
    p.document().err()
}

/// body-parser's strict mode (`body-parser/lib/types/json.js`, `createStrictSyntaxError`): a
/// body whose first non-blank character is not `{` or `[` is parsed as `#` from there on, and
/// each run of `#` in V8's message is replaced by the body's text from that character.
pub fn strict_message(text: &str) -> String {
    let units: Vec<u16> = text.encode_utf16().collect();
    let index = units.iter().position(|&c| !is_ws(c));
    let partial: String = match index {
        Some(i) => String::from_utf16_lossy(&units[..i]) + &"#".repeat(units.len() - i),
        None => String::new(),
    };
    let message = v8_message(&partial).unwrap_or_else(|| "Unexpected end of JSON input".into());
    let Some(i) = index else {
        return message;
    };
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '#' {
            out.push(c);
            continue;
        }
        let mut run = 1;
        while chars.peek() == Some(&'#') {
            chars.next();
            run += 1;
        }
        let end = (i + run).min(units.len());
        out.push_str(&String::from_utf16_lossy(&units[i..end]));
    }
    out
}

/// JSON's whitespace: space, tab, line feed, carriage return.
fn is_ws(c: u16) -> bool {
    matches!(c, 0x20 | 0x09 | 0x0a | 0x0d)
}

/// V8's one-character tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Eos,
    String,
    Number,
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    Colon,
    Comma,
    Literal,
    Illegal,
}

fn token_of(c: Option<u16>) -> Token {
    match c {
        None => Token::Eos,
        Some(c) => match u8::try_from(c).map(char::from) {
            Ok('"') => Token::String,
            Ok('-' | '0'..='9') => Token::Number,
            Ok('{') => Token::LBrace,
            Ok('}') => Token::RBrace,
            Ok('[') => Token::LBrack,
            Ok(']') => Token::RBrack,
            Ok(':') => Token::Colon,
            Ok(',') => Token::Comma,
            Ok('t' | 'f' | 'n') => Token::Literal,
            _ => Token::Illegal,
        },
    }
}

/// What the parser is inside of, innermost last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Object,
    Array,
}

/// V8's message templates with a position (`src/common/message-template.h`).
const EXPECTED_PROP_OR_RBRACE: &str = "Expected property name or '}' in JSON at position";
const EXPECTED_COMMA_OR_RBRACK: &str =
    "Expected ',' or ']' after array element in JSON at position";
const EXPECTED_COMMA_OR_RBRACE: &str =
    "Expected ',' or '}' after property value in JSON at position";
const EXPECTED_COLON: &str = "Expected ':' after property name in JSON at position";
const EXPECTED_QUOTED_PROP: &str = "Expected double-quoted property name in JSON at position";
const NON_WHITESPACE_AFTER: &str = "Unexpected non-whitespace character after JSON at position";
const UNTERMINATED_STRING: &str = "Unterminated string in JSON at position";
const BAD_ESCAPE: &str = "Bad escaped character in JSON at position";
const BAD_CONTROL: &str = "Bad control character in string literal in JSON at position";
const BAD_UNICODE: &str = "Bad Unicode escape in JSON at position";
const NO_NUMBER_AFTER_MINUS: &str = "No number after minus sign in JSON at position";
const UNTERMINATED_FRACTION: &str = "Unterminated fractional number in JSON at position";
const EXPONENT_MISSING: &str = "Exponent part is missing a number in JSON at position";

/// Sources shorter than this are quoted whole in an "Unexpected token" message; longer ones
/// by 10 characters around the position (V8's `kMaxContextCharacters`).
const MIN_LENGTH_FOR_CONTEXT: usize = 21;
const CONTEXT: usize = 10;

struct Parser<'a> {
    s: &'a [u16],
    pos: usize,
    source: &'a str,
}

type Step = Result<(), String>;

impl Parser<'_> {
    fn cur(&self) -> Option<u16> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) -> Token {
        while self.cur().is_some_and(is_ws) {
            self.pos += 1;
        }
        token_of(self.cur())
    }

    fn at(&self, template: &str) -> String {
        format!("{template} {}", self.pos)
    }

    /// `ReportUnexpectedToken` without a template (`LookUpErrorMessageForJsonToken`).
    fn unexpected(&self, token: Token) -> String {
        match token {
            Token::Eos => "Unexpected end of JSON input".into(),
            Token::Number => self.at("Unexpected number in JSON at position"),
            Token::String => self.at("Unexpected string in JSON at position"),
            _ => {
                if matches!(
                    self.source,
                    "NaN" | "Infinity" | "undefined" | "[object Object]"
                ) {
                    return format!("\"{}\" is not valid JSON", self.source);
                }
                let ch = String::from_utf16_lossy(&self.s[self.pos..self.pos + 1]);
                let len = self.s.len();
                let quote = |from: usize, to: usize| String::from_utf16_lossy(&self.s[from..to]);
                if len < MIN_LENGTH_FOR_CONTEXT {
                    format!(
                        "Unexpected token '{ch}', \"{}\" is not valid JSON",
                        self.source
                    )
                } else if self.pos < CONTEXT {
                    let snippet = quote(0, self.pos + CONTEXT);
                    format!("Unexpected token '{ch}', \"{snippet}\"... is not valid JSON")
                } else if self.pos < len - CONTEXT {
                    let snippet = quote(self.pos - CONTEXT, self.pos + CONTEXT);
                    format!("Unexpected token '{ch}', ...\"{snippet}\"... is not valid JSON")
                } else {
                    let snippet = quote(self.pos - CONTEXT, len);
                    format!("Unexpected token '{ch}', ...\"{snippet}\" is not valid JSON")
                }
            }
        }
    }

    /// `ReportUnexpectedCharacter`: the token of the current character.
    fn unexpected_here(&self) -> String {
        self.unexpected(token_of(self.cur()))
    }

    /// `ExpectNext`: skips whitespace, then requires `token`; the template, if any, names
    /// the failure (even at the end of the input).
    fn expect_next(&mut self, token: Token, template: Option<&str>) -> Step {
        let next = self.skip_ws();
        if next == token {
            self.pos += 1;
            return Ok(());
        }
        Err(match template {
            Some(t) => self.at(t),
            None => self.unexpected(next),
        })
    }

    fn document(&mut self) -> Step {
        self.value()?;
        if self.skip_ws() != Token::Eos {
            return Err(self.at(NON_WHITESPACE_AFTER));
        }
        Ok(())
    }

    /// `ParseJsonValue`, iteratively as V8 does it.
    fn value(&mut self) -> Step {
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            // Produce a value; an opened object or array continues with its first member.
            match self.skip_ws() {
                Token::String => {
                    self.pos += 1;
                    self.string()?;
                }
                Token::Number => self.number()?,
                Token::Literal => self.literal()?,
                Token::LBrace => {
                    self.pos += 1;
                    if self.skip_ws() == Token::RBrace {
                        self.pos += 1;
                    } else {
                        stack.push(Frame::Object);
                        self.expect_next(Token::String, Some(EXPECTED_PROP_OR_RBRACE))?;
                        self.string()?;
                        self.expect_next(Token::Colon, Some(EXPECTED_COLON))?;
                        continue;
                    }
                }
                Token::LBrack => {
                    self.pos += 1;
                    if self.skip_ws() == Token::RBrack {
                        self.pos += 1;
                    } else {
                        stack.push(Frame::Array);
                        continue;
                    }
                }
                _ => return Err(self.unexpected_here()),
            }
            // Consume the value: close what it completes, or go on to the next member.
            loop {
                match stack.last() {
                    None => return Ok(()),
                    Some(Frame::Object) => {
                        if self.skip_ws() == Token::Comma {
                            self.pos += 1;
                            self.expect_next(Token::String, Some(EXPECTED_QUOTED_PROP))?;
                            self.string()?;
                            self.expect_next(Token::Colon, None)?;
                            break;
                        }
                        self.expect_next(Token::RBrace, Some(EXPECTED_COMMA_OR_RBRACE))?;
                        stack.pop();
                    }
                    Some(Frame::Array) => {
                        if self.skip_ws() == Token::Comma {
                            self.pos += 1;
                            break;
                        }
                        self.expect_next(Token::RBrack, Some(EXPECTED_COMMA_OR_RBRACK))?;
                        stack.pop();
                    }
                }
            }
        }
    }

    /// `ScanJsonString`, after the opening quote.
    fn string(&mut self) -> Step {
        loop {
            let Some(c) = self.cur() else {
                return Err(self.at(UNTERMINATED_STRING));
            };
            match c {
                0x22 => {
                    self.pos += 1;
                    return Ok(());
                }
                0x5c => {
                    self.pos += 1;
                    let Some(e) = self.cur().filter(|&e| e <= 0xff) else {
                        return Err(self.unexpected_here());
                    };
                    match e {
                        0x22 | 0x5c | 0x2f | 0x62 | 0x66 | 0x6e | 0x72 | 0x74 => self.pos += 1,
                        0x75 => {
                            for _ in 0..4 {
                                self.pos += 1;
                                if !self.cur().is_some_and(|h| {
                                    char::from_u32(h.into()).is_some_and(|h| h.is_ascii_hexdigit())
                                }) {
                                    return Err(self.at(BAD_UNICODE));
                                }
                            }
                            self.pos += 1;
                        }
                        _ => return Err(self.at(BAD_ESCAPE)),
                    }
                }
                c if c < 0x20 => return Err(self.at(BAD_CONTROL)),
                _ => self.pos += 1,
            }
        }
    }

    fn digit(&self) -> bool {
        self.cur().is_some_and(|c| (0x30..=0x39).contains(&c))
    }

    fn skip_digits(&mut self) {
        while self.digit() {
            self.pos += 1;
        }
    }

    /// `ParseJsonNumber`.
    fn number(&mut self) -> Step {
        if self.cur() == Some(0x2d) {
            self.pos += 1;
        }
        if self.cur() == Some(0x30) {
            self.pos += 1;
            if self.digit() {
                return Err(self.unexpected(Token::Number));
            }
        } else {
            if !self.digit() {
                return Err(self.at(NO_NUMBER_AFTER_MINUS));
            }
            self.skip_digits();
        }
        if self.cur() == Some(0x2e) {
            self.pos += 1;
            if !self.digit() {
                return Err(self.at(UNTERMINATED_FRACTION));
            }
            self.skip_digits();
        }
        if matches!(self.cur(), Some(0x65 | 0x45)) {
            self.pos += 1;
            if matches!(self.cur(), Some(0x2b | 0x2d)) {
                self.pos += 1;
            }
            if !self.digit() {
                return Err(self.at(EXPONENT_MISSING));
            }
            self.skip_digits();
        }
        Ok(())
    }

    /// `ScanLiteral`: `true`, `false` or `null`, stopping at the first character that differs.
    fn literal(&mut self) -> Step {
        let word: &[u8] = match self.cur() {
            Some(0x74) => b"true",
            Some(0x66) => b"false",
            _ => b"null",
        };
        self.pos += 1;
        for &expected in &word[1..] {
            match self.cur() {
                None => return Err(self.unexpected(Token::Eos)),
                Some(c) if c == u16::from(expected) => self.pos += 1,
                Some(_) => return Err(self.unexpected_here()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Node 20's `JSON.parse` answered for each input (run side by side).
    #[test]
    fn messages_are_v8s() {
        let cases: &[(&str, &str)] = &[
            ("{", "Expected property name or '}' in JSON at position 1"),
            (
                "{\"a\":1",
                "Expected ',' or '}' after property value in JSON at position 6",
            ),
            (
                "{\"a\":1,}",
                "Expected double-quoted property name in JSON at position 7",
            ),
            (
                "{\"a\" 1}",
                "Expected ':' after property name in JSON at position 5",
            ),
            (
                "{a:1}",
                "Expected property name or '}' in JSON at position 1",
            ),
            ("[1,]", "Unexpected token ']', \"[1,]\" is not valid JSON"),
            (
                "[1 2]",
                "Expected ',' or ']' after array element in JSON at position 3",
            ),
            (
                "{\"a\":1}x",
                "Unexpected non-whitespace character after JSON at position 7",
            ),
            ("{\"a\":\"b", "Unterminated string in JSON at position 7"),
            (
                "{\"a\":\"\\x\"}",
                "Bad escaped character in JSON at position 7",
            ),
            (
                "{\"a\":\"\u{1}\"}",
                "Bad control character in string literal in JSON at position 6",
            ),
            (
                "{\"a\":-}",
                "No number after minus sign in JSON at position 6",
            ),
            (
                "{\"a\":1.}",
                "Unterminated fractional number in JSON at position 7",
            ),
            (
                "{\"a\":1e}",
                "Exponent part is missing a number in JSON at position 7",
            ),
            (
                "{\"a\":tru}",
                "Unexpected token '}', \"{\"a\":tru}\" is not valid JSON",
            ),
            (
                "{\"email\":\"a@b.co\",\"password\":x}",
                "Unexpected token 'x', ...\"password\":x}\" is not valid JSON",
            ),
            ("{\"a\":01}", "Unexpected number in JSON at position 6"),
            (
                "{\"a\": \"é\" x}",
                "Expected ',' or '}' after property value in JSON at position 10",
            ),
            (" ", "Unexpected end of JSON input"),
            ("", "Unexpected end of JSON input"),
            (
                "{\"a\":1}\n\n{",
                "Unexpected non-whitespace character after JSON at position 9",
            ),
            ("{\"a\":\"\\", "Unexpected end of JSON input"),
            (
                "{\"a\":\"\\u12",
                "Bad Unicode escape in JSON at position 10",
            ),
            (
                "{\"a\":\"\\u12x4\"}",
                "Bad Unicode escape in JSON at position 10",
            ),
            ("[1,", "Unexpected end of JSON input"),
            (
                "{\"a\"",
                "Expected ':' after property name in JSON at position 4",
            ),
            (
                "{\"a\":1,",
                "Expected double-quoted property name in JSON at position 7",
            ),
            (
                "##########",
                "Unexpected token '#', \"##########\" is not valid JSON",
            ),
            (
                "#####################",
                "Unexpected token '#', \"##########\"... is not valid JSON",
            ),
            (
                "aaaaaaaaaaaaaaaaaaaa",
                "Unexpected token 'a', \"aaaaaaaaaaaaaaaaaaaa\" is not valid JSON",
            ),
            (
                "{\"aaaaaaaaaaaaaaaaaaaa\":1,\"b\":x,\"cccccccccccccccccccc\":2}",
                "Unexpected token 'x', ...\"aa\":1,\"b\":x,\"ccccccc\"... is not valid JSON",
            ),
            ("[object Object]", "\"[object Object]\" is not valid JSON"),
            (
                "[0x1]",
                "Expected ',' or ']' after array element in JSON at position 2",
            ),
            ("[-01]", "Unexpected number in JSON at position 3"),
            (
                "[1.5e+]",
                "Exponent part is missing a number in JSON at position 6",
            ),
            (
                "{\"a\":falsey}",
                "Expected ',' or '}' after property value in JSON at position 10",
            ),
            ("{\"a\":f", "Unexpected end of JSON input"),
            (
                "{\"😀\":x}",
                "Unexpected token 'x', \"{\"😀\":x}\" is not valid JSON",
            ),
            (
                "{\"a\":\"😀\"#}",
                "Expected ',' or '}' after property value in JSON at position 9",
            ),
            (
                "{\"a\":1}\u{a0}",
                "Unexpected non-whitespace character after JSON at position 7",
            ),
            (
                "[\"\\😀\"]",
                "Unexpected token '\u{fffd}', \"[\"\\😀\"]\" is not valid JSON",
            ),
            ("[\"\\é\"]", "Bad escaped character in JSON at position 3"),
            (
                "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":x}",
                "Unexpected token 'x', ...\"\"f\":6,\"g\":x}\" is not valid JSON",
            ),
            (
                "[1,2,3,4,5,6,7,8,9,x,1,2,3,4,5,6,7,8,9,0]",
                "Unexpected token 'x', ...\"5,6,7,8,9,x,1,2,3,4,\"... is not valid JSON",
            ),
            (
                "{   ",
                "Expected property name or '}' in JSON at position 4",
            ),
            (
                "{\"a\":\"b\",\"c\"}",
                "Unexpected token '}', \"{\"a\":\"b\",\"c\"}\" is not valid JSON",
            ),
            ("[,]", "Unexpected token ',', \"[,]\" is not valid JSON"),
            ("{,}", "Expected property name or '}' in JSON at position 1"),
            (
                "{\"a\"::1}",
                "Unexpected token ':', \"{\"a\"::1}\" is not valid JSON",
            ),
            (
                "{\"a\":1,\"b\"\"c\"}",
                "Unexpected string in JSON at position 10",
            ),
            (
                "{\"a\":1,\"b\"1}",
                "Unexpected number in JSON at position 10",
            ),
            ("{\"a\":1,\"b\"", "Unexpected end of JSON input"),
            (
                "{\"a\"t}",
                "Expected ':' after property name in JSON at position 4",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(v8_message(input).as_deref(), Some(*want), "{input:?}");
        }
        for ok in [
            "{\"a\":1} ",
            "[-0]",
            "[1E-3]",
            "{\"a\":1 , \"b\" : 2 }",
            "[\"\\u00e9\"]",
        ] {
            assert_eq!(v8_message(ok), None, "{ok:?}");
        }
    }

    /// body-parser's strict mode, as Directus answered these bodies.
    #[test]
    fn strict_mode_quotes_the_body() {
        assert_eq!(
            strict_message("\"abc\""),
            "Unexpected token '\"', \"\"abc\"\" is not valid JSON"
        );
        assert_eq!(strict_message("  "), "Unexpected end of JSON input");
        assert_eq!(
            strict_message("true"),
            "Unexpected token 't', \"true\" is not valid JSON"
        );
    }
}
