//! The lint post-pass over rust-hdl's Verilog text. Each fix is listed in
//! docs/export.md with the reason it cannot change the circuit's
//! behaviour; `tests/export_lint.rs` checks that the result passes
//! `verilator --lint-only -Wall` and `tests/export_cosim.rs` that it still
//! matches the golden model bit for bit.
//!
//! The pass works module by module on rust-hdl's one-statement-per-line
//! output and knows each module's declared widths:
//! 1. reserved words used as names (`release`) get a trailing `_`;
//! 2. unsized-by-intent literals (`32'h1` next to a 16-bit signal) take
//!    the width of the signal they meet, when the value fits;
//! 3. rust-hdl's bit casts `((x) & N'hff..)` become explicit zero
//!    extension `{Z'h0, x}`, a part select `x[N-1:0]` or `x`;
//! 4. sign extensions by assignment (`wire signed [47:0] a = $signed(c)`)
//!    become explicit replication of the sign bit;
//! 5. memory reads/writes guarded by `addr < n` index with the address
//!    bits the depth needs;
//! 6. a sub-module instance named like a port of that sub-module is
//!    renamed (`q` -> `q_i`, Verilator's VARHIDDEN);
//! 7. unreferenced `localparam`s (enum labels) are dropped;
//! 8. declarations the pass proves unused (an input read nowhere, a wire
//!    fed by a sub-module output and read nowhere, a clamped value whose
//!    high bits are sign copies) get a `verilator lint_off UNUSEDSIGNAL`
//!    / `lint_on` pair around that declaration only;
//! 9. one `lint_off DECLFILENAME` for the file (many modules in one file).

use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};

/// Reserved words rust-hdl 0.46 passes through as port or signal names.
/// Only words that neither rust-hdl nor the hand-written primitives ever
/// emit as keywords are listed (so every match is an identifier).
const KEYWORDS: &[&str] = &["release", "force", "deassign", "event", "table"];

/// Run every fix.
pub fn run(text: &str) -> Result<String> {
    let text = rename_keywords(text);
    let modules = split_modules(&text);
    let ports: BTreeMap<String, BTreeMap<String, Dir>> = modules
        .iter()
        .filter_map(|m| match m {
            Chunk::Module(lines) => Some(module_ports(lines)),
            Chunk::Other(_) => None,
        })
        .collect();
    let mut out = String::with_capacity(text.len() + 4096);
    out.push_str(
        "// The export is one file of many modules (Verilator's DECLFILENAME style rule expects one).\n\
         /* verilator lint_off DECLFILENAME */\n",
    );
    for chunk in modules {
        match chunk {
            Chunk::Other(s) => out.push_str(&s),
            Chunk::Module(lines) => {
                for l in fix_module(lines, &ports) {
                    out.push_str(&l);
                    out.push('\n');
                }
            }
        }
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    In,
    Out,
}

enum Chunk {
    Module(Vec<String>),
    Other(String),
}

fn split_modules(text: &str) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut other = String::new();
    let mut cur: Option<Vec<String>> = None;
    for line in text.lines() {
        match &mut cur {
            Some(m) => {
                m.push(line.to_string());
                if line.trim_start().starts_with("endmodule") {
                    out.push(Chunk::Module(cur.take().unwrap()));
                }
            }
            None => {
                if line.trim_start().starts_with("module ") {
                    if !other.is_empty() {
                        out.push(Chunk::Other(std::mem::take(&mut other)));
                    }
                    cur = Some(vec![line.to_string()]);
                } else {
                    other.push_str(line);
                    other.push('\n');
                }
            }
        }
    }
    if let Some(m) = cur {
        out.push(Chunk::Module(m));
    }
    if !other.is_empty() {
        out.push(Chunk::Other(other));
    }
    out
}

fn module_name(header: &str) -> String {
    let t = header
        .trim_start()
        .trim_start_matches("module")
        .trim_start();
    t.split(['(', ';', ' ']).next().unwrap_or("").to_string()
}

/// A declaration line: (direction, signed, width, name, memory depth).
#[derive(Debug, Clone)]
struct Decl {
    dir: Option<Dir>,
    width: usize,
    name: String,
    depth: Option<usize>,
}

fn parse_decl(line: &str) -> Option<Decl> {
    let mut t = line.trim();
    let mut dir = None;
    for (kw, d) in [("input ", Dir::In), ("output ", Dir::Out)] {
        if let Some(r) = t.strip_prefix(kw) {
            dir = Some(d);
            t = r.trim_start();
        }
    }
    let r = t
        .strip_prefix("wire ")
        .or_else(|| t.strip_prefix("reg "))
        .or_else(|| {
            if t == "wire" || t == "reg" {
                Some("")
            } else {
                None
            }
        })?;
    let mut t = r.trim_start();
    if let Some(r) = t.strip_prefix("signed ") {
        t = r.trim_start();
    }
    let mut width = 1;
    if let Some(r) = t.strip_prefix('[') {
        let close = r.find(']')?;
        let (hi, lo) = r[..close].split_once(':')?;
        let hi: usize = hi.trim().parse().ok()?;
        let lo: usize = lo.trim().parse().ok()?;
        width = hi.checked_sub(lo)? + 1;
        t = r[close + 1..].trim_start();
    }
    let end = t.find(|c: char| !is_ident(c)).unwrap_or(t.len());
    let name = t[..end].to_string();
    if name.is_empty() {
        return None;
    }
    let rest = t[end..].trim_start();
    let depth = rest.strip_prefix("[0:").and_then(|r| {
        let close = r.find(']')?;
        r[..close].trim().parse::<usize>().ok().map(|l| l + 1)
    });
    Some(Decl {
        dir,
        width,
        name,
        depth,
    })
}

fn module_ports(lines: &[String]) -> (String, BTreeMap<String, Dir>) {
    let name = module_name(&lines[0]);
    let ports = lines
        .iter()
        .filter_map(|l| parse_decl(l))
        .filter_map(|d| d.dir.map(|dir| (d.name, dir)))
        .collect();
    (name, ports)
}

fn fix_module(
    mut lines: Vec<String>,
    ports: &BTreeMap<String, BTreeMap<String, Dir>>,
) -> Vec<String> {
    let mut widths: BTreeMap<String, usize> = BTreeMap::new();
    let mut depths: BTreeMap<String, usize> = BTreeMap::new();
    let mut zeros: BTreeSet<String> = BTreeSet::new();
    for l in lines.iter().skip(1) {
        if let Some(d) = parse_decl(l) {
            widths.insert(d.name.clone(), d.width);
            if let Some(n) = d.depth {
                depths.insert(d.name.clone(), n);
            }
        } else if let Some((name, w)) = parse_localparam(l) {
            if l.trim_end().ends_with("'h0;") {
                zeros.insert(name.clone());
            }
            widths.insert(name, w);
        }
    }
    // 6. Instances named like a port of their module.
    for l in lines.iter_mut().skip(1) {
        let t = l.trim().to_string();
        let mut parts = t.splitn(2, ' ');
        let (Some(kind), Some(rest)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(child) = ports.get(kind) else {
            continue;
        };
        let inst = rest.trim_end_matches('(').trim();
        if rest.ends_with('(') && child.contains_key(inst) {
            let fixed = l.replacen(&format!(" {inst}("), &format!(" {inst}_i("), 1);
            *l = fixed;
        }
    }
    // 2.-5. Line rewrites.
    for l in lines.iter_mut().skip(1) {
        if l.trim_start().starts_with("//") {
            continue;
        }
        let mut s = fix_casts(l, &widths);
        s = fix_sign_extension(&s, &widths);
        s = fix_memory_index(&s, &widths, &depths);
        s = fix_literals(&s, &widths);
        s = fix_compare_with_zero(&s, &zeros);
        *l = s;
    }
    // 7. Unreferenced localparams.
    let counts = identifier_counts(&lines);
    lines.retain(|l| match parse_localparam(l) {
        Some((name, _)) => counts.get(&name).copied().unwrap_or(0) > 1,
        None => true,
    });
    // 8. Proven-unused declarations.
    let counts = identifier_counts(&lines);
    let mut out = Vec::with_capacity(lines.len() + 16);
    let header_idents: BTreeSet<String> = identifiers(&lines[0]).into_iter().collect();
    for (i, l) in lines.iter().enumerate() {
        let unused = i > 0 && unused_declaration(l, &lines, &counts, &header_idents, ports);
        if unused {
            out.push("    /* verilator lint_off UNUSEDSIGNAL */".to_string());
            out.push(l.clone());
            out.push("    /* verilator lint_on UNUSEDSIGNAL */".to_string());
        } else {
            out.push(l.clone());
        }
    }
    out
}

fn unused_declaration(
    line: &str,
    lines: &[String],
    counts: &BTreeMap<String, usize>,
    header: &BTreeSet<String>,
    ports: &BTreeMap<String, BTreeMap<String, Dir>>,
) -> bool {
    let Some(d) = parse_decl(line) else {
        return false;
    };
    let n = counts.get(&d.name).copied().unwrap_or(0);
    let in_header = header.contains(&d.name) as usize;
    match d.dir {
        // An input read nowhere: header + declaration only.
        Some(Dir::In) => n == 1 + in_header,
        Some(Dir::Out) => false,
        None => {
            // Declaration + one pin connection to an output of a sub-module.
            (n == 2 && driven_only_by_output_pin(&d.name, lines, ports))
                || clamped_high_bits_are_sign_copies(line, &d, lines)
        }
    }
}

/// `.port(name)` of an instance whose module declares `port` an output,
/// and no other use.
fn driven_only_by_output_pin(
    name: &str,
    lines: &[String],
    ports: &BTreeMap<String, BTreeMap<String, Dir>>,
) -> bool {
    let mut kind: Option<&str> = None;
    for l in lines {
        let t = l.trim();
        if t.ends_with('(') && !t.starts_with("module") {
            kind = t.split(' ').next();
        }
        let pin = format!("({name})");
        if let Some(pos) = t.find(&pin) {
            if t.starts_with('.') {
                let port = &t[1..pos];
                return kind
                    .and_then(|k| ports.get(k))
                    .and_then(|p| p.get(port))
                    .is_some_and(|d| *d == Dir::Out);
            }
        }
    }
    false
}

/// `wire signed [63:0] x = (s < LO) ? LO : ((s > HI) ? HI : s);` read only
/// as `x[K:0]` with LO and HI inside the signed range of K + 1 bits: the
/// bits above K equal bit K for every value x can take.
fn clamped_high_bits_are_sign_copies(line: &str, d: &Decl, lines: &[String]) -> bool {
    let t = line.trim();
    if !t.starts_with("wire signed [63:0]") || !t.contains(" ? ") {
        return false;
    }
    let lits: Vec<i64> = t
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ';')
        .filter_map(|w| w.strip_prefix("64'sh"))
        .filter_map(|h| u64::from_str_radix(h, 16).ok())
        .map(|u| u as i64)
        .collect();
    if lits.len() != 4 || d.width != 64 {
        return false;
    }
    let (lo, hi) = (lits[0], lits[2]);
    let mut top: Option<usize> = None;
    for l in lines {
        if std::ptr::eq(l.as_str(), line) || l.trim() == t {
            continue;
        }
        let pat = format!("{}[", d.name);
        let mut rest = l.as_str();
        while let Some(p) = rest.find(&pat) {
            let before = rest[..p].chars().last();
            let after = &rest[p + pat.len()..];
            if before.is_some_and(is_ident) {
                rest = after;
                continue;
            }
            let Some(close) = after.find(']') else {
                return false;
            };
            let Some((k, z)) = after[..close].split_once(':') else {
                return false;
            };
            if z.trim() != "0" {
                return false;
            }
            let Ok(k) = k.trim().parse::<usize>() else {
                return false;
            };
            if top.is_some_and(|t| t != k) {
                return false;
            }
            top = Some(k);
            rest = &after[close..];
        }
    }
    match top {
        Some(k) if k < 63 => {
            let min = -(1i64 << k);
            let max = (1i64 << k) - 1;
            lo >= min && hi <= max && lo <= hi
        }
        _ => false,
    }
}

fn parse_localparam(line: &str) -> Option<(String, usize)> {
    let t = line.trim().strip_prefix("localparam ")?.trim_start();
    let (name, val) = t.split_once('=')?;
    let name = name.trim().to_string();
    let val = val.trim().trim_end_matches(';').trim();
    let w = match val.split_once('\'') {
        Some((w, _)) => w.parse().ok()?,
        None => 32,
    };
    Some((name, w))
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// Identifiers of a line (not literal digits or bases, not comments).
fn identifiers(line: &str) -> Vec<String> {
    let code = match line.find("//") {
        Some(p) => &line[..p],
        None => line,
    };
    let b: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if (c.is_ascii_alphabetic() || c == '_')
            && !(i > 0 && (b[i - 1] == '\'' || b[i - 1] == '$'))
        {
            let st = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            out.push(b[st..i].iter().collect());
        } else if c.is_ascii_digit() || c == '\'' {
            // A literal: digits, base, value.
            i += 1;
            while i < b.len() && (is_ident(b[i]) || b[i] == '\'') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

fn identifier_counts(lines: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in lines {
        for id in identifiers(l) {
            *m.entry(id).or_insert(0) += 1;
        }
    }
    m
}

/// A sized literal token at the start of `s`: (width, signed, base, digits, length).
fn literal_at(s: &str) -> Option<(usize, bool, char, String, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == 0 || i >= b.len() || b[i] != b'\'' {
        return None;
    }
    let width: usize = s[..i].parse().ok()?;
    i += 1;
    let signed = b.get(i) == Some(&b's');
    if signed {
        i += 1;
    }
    let base = *b.get(i)? as char;
    if !matches!(base, 'h' | 'b' | 'd') {
        return None;
    }
    i += 1;
    let st = i;
    while i < b.len() && (b[i].is_ascii_hexdigit() || b[i] == b'_') {
        i += 1;
    }
    if i == st {
        return None;
    }
    Some((width, signed, base, s[st..i].replace('_', ""), i))
}

fn literal_value(base: char, digits: &str) -> Option<u128> {
    let radix = match base {
        'h' => 16,
        'b' => 2,
        _ => 10,
    };
    u128::from_str_radix(digits, radix).ok()
}

fn fits(v: u128, w: usize) -> bool {
    w >= 128 || v < (1u128 << w)
}

fn sized(w: usize, v: u128) -> String {
    format!("{w}'h{v:x}")
}

/// Fix 2: `IDENT op N'hV`, `N'hV op IDENT` and `IDENT = N'hV;` with a
/// known-width IDENT of another width: the literal takes IDENT's width
/// when its value fits (Verilog widens the other way, so the value and
/// the result bits are unchanged; only where a 32-bit literal widened a
/// sum before a compare could results differ, and there the narrow form
/// is rust-hdl's own simulation semantics, which the co-simulation checks).
/// The operand may also be a parenthesised shift `(x >> ...)`, whose
/// width is x's.
fn fix_literals(line: &str, widths: &BTreeMap<String, usize>) -> String {
    let ops = [
        "==", "!=", "<=", ">=", "<", ">", "+", "-", "&", "|", "^", "=",
    ];
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    let bytes = line.as_bytes();
    while i < line.len() {
        let prev_ident = i > 0 && is_ident(bytes[i - 1] as char);
        if !prev_ident && bytes[i].is_ascii_digit() {
            if let Some((w, signed, base, digits, len)) = literal_at(&line[i..]) {
                let before = out.trim_end();
                let after = line[i + len..].trim_start();
                let mut target: Option<usize> = None;
                if !signed {
                    // operand on the left
                    for op in ops {
                        if let Some(b) = before.strip_suffix(op) {
                            // Do not split "<<" / ">>" / "<=" wrongly.
                            if (op == "<" || op == ">") && (b.ends_with('<') || b.ends_with('>')) {
                                break;
                            }
                            if op == "=" && (b.ends_with(['=', '!', '<', '>'])) {
                                break;
                            }
                            target = operand_width_left(b.trim_end(), widths);
                            break;
                        }
                    }
                    if target.is_none() {
                        for op in ops {
                            if op == "=" {
                                continue;
                            }
                            if let Some(a) = after.strip_prefix(op) {
                                if a.starts_with(['=', '<', '>']) && op.len() == 1 {
                                    break;
                                }
                                target = operand_width_right(a.trim_start(), widths);
                                break;
                            }
                        }
                    }
                }
                if let (Some(t), Some(v)) = (target, literal_value(base, &digits)) {
                    if t != w && fits(v, t) {
                        out.push_str(&sized(t, v));
                        i += len;
                        continue;
                    }
                }
                out.push_str(&line[i..i + len]);
                i += len;
                continue;
            }
        }
        let ch = line[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn operand_width_left(b: &str, widths: &BTreeMap<String, usize>) -> Option<usize> {
    if b.ends_with(')') {
        // `(x >> (...))`: find the matching open paren.
        let chars: Vec<char> = b.chars().collect();
        let mut depth = 0;
        for j in (0..chars.len()).rev() {
            match chars[j] {
                ')' => depth += 1,
                '(' => {
                    depth -= 1;
                    if depth == 0 {
                        let inner: String = chars[j + 1..chars.len() - 1].iter().collect();
                        let inner = inner.trim();
                        let end = inner.find(|c: char| !is_ident(c)).unwrap_or(inner.len());
                        let (id, rest) = inner.split_at(end);
                        let rest = rest.trim_start();
                        if rest.starts_with(">>") || rest.starts_with("<<") {
                            return widths.get(id).copied();
                        }
                        return None;
                    }
                }
                _ => {}
            }
        }
        return None;
    }
    let st = b
        .char_indices()
        .rev()
        .find(|&(_, c)| !is_ident(c))
        .map(|(p, c)| p + c.len_utf8())
        .unwrap_or(0);
    let id = &b[st..];
    if id.is_empty() || id.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    // An indexed or sliced operand `x[..]` is not a plain signal.
    widths.get(id).copied()
}

fn operand_width_right(a: &str, widths: &BTreeMap<String, usize>) -> Option<usize> {
    let end = a.find(|c: char| !is_ident(c)).unwrap_or(a.len());
    let id = &a[..end];
    if id.is_empty() || a[end..].trim_start().starts_with('[') {
        return None;
    }
    widths.get(id).copied()
}

/// Fix 3: `((x) & N'hmask)` with mask = 2^N - 1 and x of known width w.
fn fix_casts(line: &str, widths: &BTreeMap<String, usize>) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(p) = rest.find("((") {
        out.push_str(&rest[..p]);
        let after = &rest[p + 2..];
        let end = after.find(|c: char| !is_ident(c)).unwrap_or(after.len());
        let id = &after[..end];
        let tail = &after[end..];
        if let (Some(w), Some(t)) = (widths.get(id), tail.strip_prefix(") & ")) {
            if let Some((n, false, base, digits, len)) = literal_at(t) {
                let mask_ok =
                    literal_value(base, &digits).is_some_and(|v| n < 128 && v == (1u128 << n) - 1);
                if mask_ok && t[len..].starts_with(')') {
                    let w = *w;
                    let repl = if w == n {
                        id.to_string()
                    } else if w < n {
                        format!("{{{}'h0, {id}}}", n - w)
                    } else if n == 1 {
                        format!("{id}[0]")
                    } else {
                        format!("{id}[{}:0]", n - 1)
                    };
                    out.push('(');
                    out.push_str(&repl);
                    out.push(')');
                    rest = &t[len + 1..];
                    continue;
                }
            }
        }
        out.push('(');
        rest = &rest[p + 1..];
    }
    out.push_str(rest);
    out
}

/// Fix 2b: `a < z` with `z` a localparam equal to 0 is constant false for
/// unsigned `a` (Verilator's UNSIGNED); written as `1'b0`, the same value.
/// Only where the comparison is a whole operand (after `=`, `(`, `&&`, `||`).
fn fix_compare_with_zero(line: &str, zeros: &BTreeSet<String>) -> String {
    let mut s = line.to_string();
    for z in zeros {
        let pat = format!(" < {z}");
        while let Some(p) = s.find(&pat) {
            let end = p + pat.len();
            if s[end..].starts_with(is_ident) {
                break;
            }
            let head = &s[..p];
            let st = head
                .char_indices()
                .rev()
                .find(|&(_, c)| !is_ident(c))
                .map(|(q, c)| q + c.len_utf8())
                .unwrap_or(0);
            let before = head[..st].trim_end();
            let whole = before.ends_with('=') && !before.ends_with("==")
                || before.ends_with('(')
                || before.ends_with("&&")
                || before.ends_with("||");
            if st == p || !whole {
                break;
            }
            s = format!("{}1'b0{}", &s[..st], &s[end..]);
        }
    }
    s
}

/// Fix 4: `wire signed [A:0] x = $signed(y);` with y narrower.
fn fix_sign_extension(line: &str, widths: &BTreeMap<String, usize>) -> String {
    let t = line.trim();
    let Some(d) = parse_decl(t) else {
        return line.to_string();
    };
    let Some((_, rhs)) = t.split_once(" = $signed(") else {
        return line.to_string();
    };
    let y = rhs.trim_end_matches(';').trim_end_matches(')');
    if !rhs.ends_with(");") || y.contains(|c: char| !is_ident(c)) {
        return line.to_string();
    }
    match widths.get(y) {
        Some(&w) if w < d.width => {
            let indent = &line[..line.len() - line.trim_start().len()];
            let (decl, _) = t.split_once(" = ").unwrap();
            format!(
                "{indent}{decl} = $signed({{{{{}{{{y}[{}]}}}}, {y}}});",
                d.width - w,
                w - 1
            )
        }
        _ => line.to_string(),
    }
}

/// Fix 5: `mem[a]` in a statement guarded by `a < n`, a wider than the
/// depth needs: index with the low bits (equal to a whenever a < n).
fn fix_memory_index(
    line: &str,
    widths: &BTreeMap<String, usize>,
    depths: &BTreeMap<String, usize>,
) -> String {
    let mut s = line.to_string();
    for (mem, &n) in depths {
        let bits = (usize::BITS - (n.max(2) - 1).leading_zeros()) as usize;
        let pat = format!("{mem}[");
        let mut out = String::new();
        let mut rest = s.as_str();
        while let Some(p) = rest.find(&pat) {
            let before_ok = p == 0 || !is_ident(rest[..p].chars().last().unwrap());
            out.push_str(&rest[..p + pat.len()]);
            let after = &rest[p + pat.len()..];
            let end = after.find(']').unwrap_or(after.len());
            let idx = &after[..end];
            let guarded =
                s.contains(&format!("{idx} < {n})")) || s.contains(&format!("{idx} < {n} "));
            match widths.get(idx) {
                Some(&w) if before_ok && guarded && w > bits => {
                    out.push_str(&format!("{idx}[{}:0]", bits - 1));
                }
                _ => out.push_str(idx),
            }
            rest = &after[end..];
        }
        out.push_str(rest);
        s = out;
    }
    s
}

/// Fix 1: a bare identifier that is a reserved word becomes `word_`.
/// Only whole identifiers match (`ingest$release` is one identifier and
/// stays); a literal's base letters are skipped.
pub fn rename_keywords(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_ident(c) && !c.is_ascii_digit() {
            let st = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[st..i].iter().collect();
            let literal = st > 0 && chars[st - 1] == '\'';
            out.push_str(&word);
            if !literal && KEYWORDS.contains(&word.as_str()) {
                out.push('_');
            }
        } else if c.is_ascii_digit() {
            while i < chars.len() && is_ident(chars[i]) {
                out.push(chars[i]);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn reserved_words_are_renamed_as_whole_identifiers() {
        let v = "module m(clock,release); input wire release; assign ingest$release = release; x = 32'hff;";
        assert_eq!(
            rename_keywords(v),
            "module m(clock,release_); input wire release_; assign ingest$release = release_; x = 32'hff;"
        );
    }

    #[test]
    fn literals_take_the_width_of_their_operand() {
        let ws = w(&[
            ("gate$q", 16),
            ("gate$d", 16),
            ("amp1", 24),
            ("numer$q", 24),
            ("b", 1),
        ]);
        assert_eq!(
            fix_literals("gate$d = gate$q + 32'h1;", &ws),
            "gate$d = gate$q + 16'h1;"
        );
        assert_eq!(fix_literals("amp1 = 32'h0;", &ws), "amp1 = 24'h0;");
        assert_eq!(
            fix_literals("if (gate$q == 32'h10) begin", &ws),
            "if (gate$q == 16'h10) begin"
        );
        assert_eq!(
            fix_literals("x = (numer$q >> (c - 1)) & 32'h1;", &ws),
            "x = (numer$q >> (c - 1)) & 24'h1;"
        );
        // Does not fit: left alone.
        assert_eq!(fix_literals("b = 32'h2;", &ws), "b = 32'h2;");
        // Shift amounts are not operands of the same width.
        assert_eq!(
            fix_literals("gate$d = gate$q << 32'h1;", &ws),
            "gate$d = gate$q << 32'h1;"
        );
        assert_eq!(fix_literals("q <= 32'h0;", &w(&[("q", 8)])), "q <= 8'h0;");
    }

    #[test]
    fn casts_become_extensions_or_selects() {
        let ws = w(&[("a", 16), ("b", 32), ("c", 24)]);
        assert_eq!(
            fix_casts("x = ((a) & 24'hffffff);", &ws),
            "x = ({8'h0, a});"
        );
        assert_eq!(
            fix_casts("x = ((b) & 16'hffff) + 1;", &ws),
            "x = (b[15:0]) + 1;"
        );
        assert_eq!(fix_casts("x = ((c) & 24'hffffff);", &ws), "x = (c);");
        assert_eq!(
            fix_casts("x = ((c) & 24'hfffff0);", &ws),
            "x = ((c) & 24'hfffff0);"
        );
        assert_eq!(
            fix_casts("x = (((a) & 32'hffffffff) << k) + 1;", &ws),
            "x = (({16'h0, a}) << k) + 1;"
        );
        let z: BTreeSet<String> = ["z$1".to_string()].into();
        assert_eq!(fix_compare_with_zero("u = p$q < z$1;", &z), "u = 1'b0;");
        assert_eq!(
            fix_compare_with_zero("u = a + p < z$1;", &z),
            "u = a + p < z$1;"
        );
    }

    #[test]
    fn sign_extension_and_memory_index() {
        let ws = w(&[("c", 18), ("raddr0", 16)]);
        assert_eq!(
            fix_sign_extension("    wire signed [47:0] addend = $signed(c);", &ws),
            "    wire signed [47:0] addend = $signed({{30{c[17]}}, c});"
        );
        let ds: BTreeMap<String, usize> = [("mem".to_string(), 11)].into();
        assert_eq!(
            fix_memory_index("   rdata0 = (raddr0 < 11) ? mem[raddr0] : 18'h0;", &ws, &ds),
            "   rdata0 = (raddr0 < 11) ? mem[raddr0[3:0]] : 18'h0;"
        );
    }
}
