//! Loop unrolling of rust-hdl's `#[hdl_gen]` syntax trees before Verilog
//! generation (fixes a rust-hdl-core 0.46 code-generator defect).
//!
//! rust-hdl 0.46 unrolls a `for` loop while writing Verilog and resolves a
//! signal name such as `lane[l]$unit_is_a[m]` with a regular expression
//! that rewrites only the *first* `[...]` of the name
//! (`VerilogCodeGenerator::array_index_simplification`, which calls
//! `Regex::replace`, not `replace_all`). A signal indexed twice (a port
//! of the l-th sub-block's m-th element, as in `src/rtl/gru.rs`) comes
//! out as `lane$0$unit_is_a[m]`: an undeclared name indexed by an
//! undeclared `m`, which Verilator rejects and which would silently
//! lose the loop's meaning in a tool that guessed.
//!
//! The fix here works on the syntax tree, not the text: every
//! [`VerilogStatement::Loop`] is replaced by its body repeated for each
//! index value, and in every signal name of the body each `[expr]` whose
//! expression evaluates with the enclosing loops' indices becomes `$n`,
//! the name rust-hdl gives to element n of a `Vec` field. A signal whose
//! whole name is a loop index becomes the index's decimal value, as in
//! rust-hdl. The generator then sees no loops at all; the rest of its
//! output is unchanged.

use rust_hdl::core::ast::{
    Verilog, VerilogBlock, VerilogBlockOrConditional, VerilogCase, VerilogConditional,
    VerilogExpression, VerilogMatch, VerilogStatement,
};

type Env = Vec<(String, i64)>;

/// The code of a block with every loop unrolled (other kinds unchanged).
pub fn unroll(code: Verilog) -> Verilog {
    match code {
        Verilog::Combinatorial(block) => Verilog::Combinatorial(block_(&block, &mut Vec::new())),
        other => other,
    }
}

fn block_(b: &VerilogBlock, env: &mut Env) -> VerilogBlock {
    let mut out = Vec::with_capacity(b.len());
    for s in b {
        statement(s, env, &mut out);
    }
    out
}

fn statement(s: &VerilogStatement, env: &mut Env, out: &mut VerilogBlock) {
    use VerilogStatement as S;
    match s {
        S::Loop(l) => {
            for i in l.from.as_usize()..l.to.as_usize() {
                env.push((l.index.clone(), i as i64));
                for s in &l.block {
                    statement(s, env, out);
                }
                env.pop();
            }
        }
        S::Assignment(a, b) => out.push(S::Assignment(expr(a, env), expr(b, env))),
        S::SliceAssignment {
            base,
            width,
            offset,
            replacement,
        } => out.push(S::SliceAssignment {
            base: expr(base, env),
            width: *width,
            offset: expr(offset, env),
            replacement: expr(replacement, env),
        }),
        S::If(c) => out.push(S::If(conditional(c, env))),
        S::Match(m) => out.push(S::Match(VerilogMatch {
            test: expr(&m.test, env),
            cases: m
                .cases
                .iter()
                .map(|c| VerilogCase {
                    condition: c.condition.clone(),
                    block: block_(&c.block, env),
                })
                .collect(),
        })),
        S::Macro(b) => out.push(S::Macro(block_(b, env))),
        S::Comment(_) | S::Link(_) => out.push(s.clone()),
    }
}

fn conditional(c: &VerilogConditional, env: &mut Env) -> VerilogConditional {
    VerilogConditional {
        test: expr(&c.test, env),
        then: block_(&c.then, env),
        otherwise: match &c.otherwise {
            VerilogBlockOrConditional::Block(b) => VerilogBlockOrConditional::Block(block_(b, env)),
            VerilogBlockOrConditional::Conditional(s) => {
                let mut v = Vec::new();
                statement(s, env, &mut v);
                match v.len() {
                    1 => VerilogBlockOrConditional::Conditional(Box::new(v.remove(0))),
                    _ => VerilogBlockOrConditional::Block(v),
                }
            }
            VerilogBlockOrConditional::None => VerilogBlockOrConditional::None,
        },
    }
}

fn expr(e: &VerilogExpression, env: &Env) -> VerilogExpression {
    use VerilogExpression as E;
    let bx = |x: &VerilogExpression| Box::new(expr(x, env));
    match e {
        E::Signal(name) => E::Signal(signal_name(name, env)),
        E::Literal(_) => e.clone(),
        E::Cast(a, n) => E::Cast(bx(a), *n),
        E::Signed(a) => E::Signed(bx(a)),
        E::Unsigned(a) => E::Unsigned(bx(a)),
        E::Paren(a) => E::Paren(bx(a)),
        E::Binary(a, op, b) => E::Binary(bx(a), op.clone(), bx(b)),
        E::Unary(op, a) => E::Unary(op.clone(), bx(a)),
        E::Index(a, b) => E::Index(bx(a), bx(b)),
        E::Slice(a, n, b) => E::Slice(bx(a), *n, bx(b)),
        E::IndexReplace(a, b, c) => E::IndexReplace(bx(a), bx(b), bx(c)),
    }
}

/// `lane[l]$unit_is_a[m]$next` with l = 1, m = 2 -> `lane$1$unit_is_a$2$next`.
/// Brackets whose expression does not evaluate are left to rust-hdl.
pub fn signal_name(name: &str, env: &Env) -> String {
    if env.is_empty() {
        return name.to_string();
    }
    if let Some((_, v)) = env.iter().rev().find(|(k, _)| k == name) {
        return v.to_string();
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        out.push_str(&rest[..open]);
        match eval(&rest[open + 1..close], env) {
            Some(v) if v >= 0 => out.push_str(&format!("${v}")),
            _ => out.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Integer expressions of loop indices and literals: + - * / % and
/// parentheses (what rust-hdl's evalexpr-based resolver accepts in an index).
pub fn eval(text: &str, env: &Env) -> Option<i64> {
    let toks = tokens(text)?;
    let mut p = Parser {
        t: &toks,
        i: 0,
        env,
    };
    let v = p.sum()?;
    (p.i == toks.len()).then_some(v)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(i64),
    Id(String),
    Op(char),
}

fn tokens(s: &str) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch.is_ascii_digit() {
            let st = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let lit: String = c[st..i].iter().filter(|&&d| d != '_').collect();
            let lit = lit.trim_end_matches("usize").trim_end_matches("u32");
            out.push(Tok::Num(lit.parse().ok()?));
        } else if ch.is_alphabetic() || ch == '_' {
            let st = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Tok::Id(c[st..i].iter().collect()));
        } else if "+-*/%()".contains(ch) {
            out.push(Tok::Op(ch));
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

struct Parser<'a> {
    t: &'a [Tok],
    i: usize,
    env: &'a Env,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }
    fn sum(&mut self) -> Option<i64> {
        let mut v = self.product()?;
        while let Some(Tok::Op(o @ ('+' | '-'))) = self.peek().cloned() {
            self.i += 1;
            let r = self.product()?;
            v = if o == '+' { v + r } else { v - r };
        }
        Some(v)
    }
    fn product(&mut self) -> Option<i64> {
        let mut v = self.atom()?;
        while let Some(Tok::Op(o @ ('*' | '/' | '%'))) = self.peek().cloned() {
            self.i += 1;
            let r = self.atom()?;
            v = match o {
                '*' => v * r,
                '/' => v.checked_div(r)?,
                _ => v.checked_rem(r)?,
            };
        }
        Some(v)
    }
    fn atom(&mut self) -> Option<i64> {
        let t = self.peek()?.clone();
        self.i += 1;
        match t {
            Tok::Num(n) => Some(n),
            Tok::Id(id) => self
                .env
                .iter()
                .rev()
                .find(|(k, _)| *k == id)
                .map(|(_, v)| *v),
            Tok::Op('(') => {
                let v = self.sum()?;
                (self.peek() == Some(&Tok::Op(')'))).then(|| self.i += 1)?;
                Some(v)
            }
            Tok::Op('-') => Some(-self.atom()?),
            Tok::Op(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bracket_of_a_name_is_resolved() {
        let env: Env = vec![("mm".into(), 3), ("l".into(), 1), ("c".into(), 2)];
        assert_eq!(
            signal_name("lane[l]$unit_is_a[c]$next", &env),
            "lane$1$unit_is_a$2$next"
        );
        assert_eq!(
            signal_name("dbg_channel[l * mm + c]$next", &env),
            "dbg_channel$5$next"
        );
        assert_eq!(signal_name("c", &env), "2");
        assert_eq!(signal_name("x[k]", &env), "x[k]");
        assert_eq!(signal_name("x[k]", &Vec::new()), "x[k]");
        assert_eq!(eval("(l + 2) * 3 - c / 2", &env), Some(8));
    }
}
