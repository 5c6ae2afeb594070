//! Board top levels (src/boards, docs/boards.md): the UART in rust-hdl
//! simulation, every board's whole top simulated against the golden model
//! through its UART (and the parallel port), the generated Verilog
//! lint-clean with Verilator and synthesised by yosys for the board's
//! family, the constraint files matching the tops' ports, configuration
//! errors, and the committed Verilog of the shipped student under boards/
//! current (regenerate it with `FLIMGRU_BLESS=1 cargo test --test boards`).
//! Verilator and yosys must be installed (`bash scripts/setup.sh`): the
//! tests that need them fail, never skip, without them.

mod export_common;

use flimgru::boards::arty::ArtyTop;
use flimgru::boards::icebreaker::IceBreakerTop;
use flimgru::boards::sim::{self, Port};
use flimgru::boards::uart_rx::UartRx;
use flimgru::boards::uart_tx::UartTx;
use flimgru::boards::ulx3s::Ulx3sTop;
use flimgru::boards::{self, Board, BoardConfig, BoardTop};
use flimgru::data::GateGrid;
use flimgru::export;
use flimgru::fixed::{Golden, QuantModel};
use flimgru::rtl::testbench;
use flimgru::rtl::{CircuitSpec, Dsp, Layout};
use flimgru::synth::yosys;
use rust_hdl::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

/// The tiny model of the board tests: H = 2, W = 8, on 11 gates.
fn tiny() -> (QuantModel, GateGrid) {
    (
        testbench::random_model(8, 2, 5),
        GateGrid::new(11, 12.5 / 11.0).unwrap(),
    )
}

/// The tiny model on `board` with P = `lanes`, M = 2 and the board's
/// multipliers.
fn tiny_spec(board: Board, lanes: usize) -> CircuitSpec {
    let (model, grid) = tiny();
    board.spec(model, grid, Layout { lanes, macs: 2 }).unwrap()
}

/// A configuration with 4 clock cycles per UART bit (fast simulation).
fn fast(board: Board) -> BoardConfig {
    let clock_mhz = board.default_config().clock_mhz;
    BoardConfig {
        clock_mhz,
        baud: (clock_mhz * 1e6 / 4.0) as u32,
    }
}

/// Simulate `top` on corner histograms through `port` and compare the
/// decoded records with the golden model.
fn check_top<T: BoardTop>(top: &mut T, model: &QuantModel, grid: &GateGrid, port: Port, seed: u64) {
    let s = *top.settings();
    assert_eq!(s.divisor, 4);
    let p = s.layout.lanes;
    let counts = testbench::corner_histograms(grid.gates, 2, seed);
    let n = counts.nrows();
    let want = Golden::new(model, grid)
        .unwrap()
        .run(counts.view())
        .unwrap();
    let bytes = boards::encode_histograms(counts.view(), p);
    let groups = n.div_ceil(p);
    let t0 = Instant::now();
    let out = sim::run(
        top,
        port,
        &bytes,
        boards::protocol::group_bytes(p, grid.gates),
        groups * p,
        400_000,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "{} P={p} {port:?}: {n} pixels, {} cycles, {:.1} s",
        s.board,
        out.cycles,
        t0.elapsed().as_secs_f64()
    );
    let got = boards::decode_results(&out.bytes).unwrap();
    assert_eq!(got.len(), groups * p);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.pixel, i as u64, "records out of order");
        if i < n {
            assert_eq!(r.codes, want[i], "{} P={p}: pixel {i}", s.board);
        }
    }
    assert!(!out.error, "{}: the error LED came on", s.board);
    assert!(
        !out.busy_at_end,
        "{}: still busy after the last record",
        s.board
    );
    assert!(out.locked);
}

#[test]
fn uart_loopback_and_framing() {
    use rand::{Rng, SeedableRng};
    // tx -> rx at several divisors, random bytes offered with random gaps.
    for div in [2u32, 4, 13] {
        let mut tx = UartTx::new(div).unwrap();
        let mut rx = UartRx::new(div).unwrap();
        tx.connect_all();
        rx.connect_all();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(div as u64);
        let bytes: Vec<u8> = (0..200).map(|_| rng.gen()).collect();
        let (mut sent, mut got, mut errors) = (0usize, Vec::new(), 0);
        for _ in 0..(bytes.len() as u32 * (10 * div + 4) * 2) {
            if got.len() == bytes.len() {
                break;
            }
            tx.valid.next = sent < bytes.len() && rng.gen_bool(0.5);
            tx.data.next = (bytes[sent.min(bytes.len() - 1)] as u64).into();
            for clk in [false, true] {
                tx.clock.next = Clock { clk };
                rx.clock.next = Clock { clk };
                assert!(simulate(&mut tx, 100));
                rx.rx.next = tx.tx.val();
                assert!(simulate(&mut rx, 100));
                if !clk {
                    if tx.valid.val() && tx.ready.val() {
                        sent += 1;
                    }
                    if rx.valid.val() {
                        got.push(rx.data.val().to_u64() as u8);
                    }
                    if rx.frame_error.val() {
                        errors += 1;
                    }
                }
            }
        }
        assert_eq!(got, bytes, "divisor {div}");
        assert_eq!(errors, 0);
    }
    // A receiver at the wrong rate (a third too slow) sees framing errors
    // or wrong bytes, never the right ones.
    let mut tx = UartTx::new(12).unwrap();
    let mut rx = UartRx::new(16).unwrap();
    tx.connect_all();
    rx.connect_all();
    let (mut got, mut errors) = (Vec::new(), 0);
    for i in 0..3000 {
        tx.valid.next = i < 2000;
        tx.data.next = 0x0f.into();
        for clk in [false, true] {
            tx.clock.next = Clock { clk };
            rx.clock.next = Clock { clk };
            assert!(simulate(&mut tx, 100));
            rx.rx.next = tx.tx.val();
            assert!(simulate(&mut rx, 100));
            if !clk && rx.valid.val() {
                got.push(rx.data.val().to_u64() as u8);
            }
            if !clk && rx.frame_error.val() {
                errors += 1;
            }
        }
    }
    assert!(errors > 0 || got.iter().any(|&b| b != 0x0f), "{got:?}");
}

#[test]
fn ulx3s_top_matches_the_golden_model_over_uart() {
    let (model, grid) = tiny();
    for p in [1, 2] {
        let mut top = Ulx3sTop::new(&tiny_spec(Board::Ulx3s, p), &fast(Board::Ulx3s)).unwrap();
        check_top(&mut top, &model, &grid, Port::Uart, p as u64);
    }
}

#[test]
fn arty_top_matches_the_golden_model_over_uart() {
    let (model, grid) = tiny();
    for p in [1, 2] {
        let mut top = ArtyTop::new(&tiny_spec(Board::ArtyA7, p), &fast(Board::ArtyA7)).unwrap();
        check_top(&mut top, &model, &grid, Port::Uart, 10 + p as u64);
    }
}

#[test]
fn icebreaker_top_matches_the_golden_model_over_uart() {
    let (model, grid) = tiny();
    for p in [1, 2] {
        let mut top =
            IceBreakerTop::new(&tiny_spec(Board::IceBreaker, p), &fast(Board::IceBreaker)).unwrap();
        check_top(&mut top, &model, &grid, Port::Uart, 20 + p as u64);
    }
}

#[test]
fn parallel_port_matches_the_golden_model_on_ulx3s_and_arty() {
    let (model, grid) = tiny();
    let mut top = Ulx3sTop::new(&tiny_spec(Board::Ulx3s, 2), &fast(Board::Ulx3s)).unwrap();
    check_top(&mut top, &model, &grid, Port::Parallel, 31);
    let mut top = ArtyTop::new(&tiny_spec(Board::ArtyA7, 1), &fast(Board::ArtyA7)).unwrap();
    check_top(&mut top, &model, &grid, Port::Parallel, 32);
    let mut top =
        IceBreakerTop::new(&tiny_spec(Board::IceBreaker, 1), &fast(Board::IceBreaker)).unwrap();
    let e = sim::run(&mut top, Port::Parallel, &[], 22, 1, 10).unwrap_err();
    assert!(e.to_string().contains("no parallel port"), "{e}");
}

/// Top-level port names of a generated Verilog file (module `top`).
fn top_ports(v: &str) -> BTreeSet<String> {
    let start = v.find("module top(").expect("module top");
    let end = start + v[start..].find("endmodule").unwrap();
    v[start..end]
        .lines()
        .filter_map(|l| {
            let t = l.trim();
            let t = t
                .strip_prefix("input wire ")
                .or_else(|| t.strip_prefix("output reg "))?;
            let t = t.trim_start();
            let t = if t.starts_with('[') {
                t[t.find(']').unwrap() + 1..].trim_start()
            } else {
                t
            };
            Some(t.trim_end_matches(';').trim().to_string())
        })
        .collect()
}

/// Port names a constraint file constrains (bus bits folded to the bus).
fn constrained(board: Board) -> BTreeSet<String> {
    let text = board.constraints_text();
    let mut out = BTreeSet::new();
    for l in text.lines() {
        let l = l.split('#').next().unwrap().trim();
        let name = match board {
            Board::Ulx3s => l
                .strip_prefix("LOCATE COMP \"")
                .and_then(|r| r.split('"').next()),
            Board::ArtyA7 => l
                .split("get_ports { ")
                .nth(1)
                .filter(|_| l.starts_with("set_property"))
                .and_then(|r| r.split(' ').next()),
            Board::IceBreaker => l.strip_prefix("set_io ").and_then(|r| r.split(' ').next()),
        };
        if let Some(n) = name {
            out.insert(n.split('[').next().unwrap().to_string());
        }
    }
    out
}

#[test]
fn constraint_files_match_the_tops_ports() {
    for board in Board::all() {
        let v = boards::board_verilog(board, &tiny_spec(board, 2), &board.default_config(), "tiny")
            .unwrap();
        let ports = top_ports(&v);
        assert!(!ports.is_empty());
        assert_eq!(
            ports,
            constrained(board),
            "{board}: ports vs {}",
            board.constraints()
        );
        // Every pin-carrying line names a site once (no pin used twice).
        let text = board.constraints_text();
        let sites: Vec<&str> = text
            .lines()
            .filter_map(|l| {
                let l = l.split('#').next().unwrap();
                match board {
                    Board::Ulx3s => l.split("SITE \"").nth(1).and_then(|r| r.split('"').next()),
                    Board::ArtyA7 => l
                        .split("PACKAGE_PIN ")
                        .nth(1)
                        .and_then(|r| r.split(' ').next()),
                    Board::IceBreaker => l
                        .strip_prefix("set_io ")
                        .and_then(|r| r.split_whitespace().nth(1)),
                }
            })
            .collect();
        let unique: BTreeSet<&str> = sites.iter().copied().collect();
        assert_eq!(unique.len(), sites.len(), "{board}: a pin is used twice");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(board.constraints());
        assert_eq!(std::fs::read_to_string(path).unwrap(), text);
    }
}

#[test]
fn board_api_and_configuration_errors() {
    for b in Board::all() {
        assert_eq!(b.to_string().parse::<Board>().unwrap(), b);
        let s = boards::Settings::new(b, &tiny_spec(b, 1), &b.default_config()).unwrap();
        assert_eq!(s.actual_baud, 1_000_000.0, "{b}");
        assert!(s.heartbeat_bit >= 20, "{b}");
    }
    assert_eq!("Arty".parse::<Board>().unwrap(), Board::ArtyA7);
    assert!("de10"
        .parse::<Board>()
        .unwrap_err()
        .to_string()
        .contains("unknown board"));
    let (model, grid) = tiny();
    let err = |b: Board, clock_mhz: f64, baud: u32| {
        let e = boards::board_verilog(b, &tiny_spec(b, 1), &BoardConfig { clock_mhz, baud }, "x")
            .unwrap_err();
        format!("{e:#}")
    };
    let e = err(Board::Ulx3s, 900.0, 115_200);
    assert!(e.contains("clock") && e.contains("900"), "{e}");
    let e = err(Board::IceBreaker, 14.0, 115_200);
    assert!(e.contains("iCE40") && e.contains("16..=275"), "{e}");
    let e = err(Board::ArtyA7, 50.0, 40_000_000);
    assert!(
        e.contains("baud") && e.contains("too high") && e.contains("< 2"),
        "{e}"
    );
    let e = err(Board::ArtyA7, 50.0, 300);
    assert!(e.contains("too low") && e.contains("65535"), "{e}");
    let e = err(Board::IceBreaker, 12.0, 2_500_000);
    assert!(e.contains("not reachable") && e.contains("%"), "{e}");
    let e = err(Board::Ulx3s, 50.0, 0);
    assert!(e.contains("baud rate 0"), "{e}");
    // The spec's own checks come through.
    let e = Board::Ulx3s
        .spec(model.clone(), grid, Layout { lanes: 1, macs: 4 })
        .unwrap_err();
    assert!(format!("{e:#}").contains("M = 4"), "{e:#}");
    // A vendor multiplier only on its own family; inferred ones anywhere.
    let e = boards::Settings::new(
        Board::ArtyA7,
        &tiny_spec(Board::Ulx3s, 1),
        &Board::ArtyA7.default_config(),
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("ecp5"), "{e:#}");
    let inferred = tiny_spec(Board::Ulx3s, 1).with_dsp(Dsp::Inferred);
    assert!(boards::Settings::new(Board::Ulx3s, &inferred, &Board::Ulx3s.default_config()).is_ok());
}

fn build_dir(name: &str) -> std::path::PathBuf {
    export_common::build_dir(&format!("boards-{name}"))
}

fn assert_lint_clean(v: &str, name: &str) {
    let issues =
        boards::lint(v, &build_dir(&format!("lint-{name}"))).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        issues.is_empty(),
        "{name}: {} lint warnings, first: {:#?}",
        issues.len(),
        &issues[..issues.len().min(10)]
    );
}

#[test]
fn tiny_board_tops_are_lint_clean() {
    let mut cases: Vec<(Board, BoardConfig, usize)> = Board::all()
        .into_iter()
        .flat_map(|b| [(b, b.default_config(), 1), (b, b.default_config(), 3)])
        .collect();
    // The iCEBreaker through its PLL.
    cases.push((
        Board::IceBreaker,
        BoardConfig {
            clock_mhz: 24.0,
            baud: 1_000_000,
        },
        1,
    ));
    for (b, cfg, p) in cases {
        let v = boards::board_verilog(b, &tiny_spec(b, p), &cfg, "tiny").unwrap();
        assert_lint_clean(&v, &format!("{b}-p{p}-{}mhz", cfg.clock_mhz));
    }
}

/// The shipped student in the board's committed layout.
fn student_spec(board: Board) -> (CircuitSpec, String) {
    let (model, grid, name) = export_common::student();
    let spec = board.spec(model, grid, board.default_layout()).unwrap();
    (spec, name)
}

fn student_verilog(board: Board) -> String {
    let (spec, name) = student_spec(board);
    boards::board_verilog(board, &spec, &board.default_config(), &name).unwrap()
}

#[test]
fn committed_board_verilog_is_current_and_lint_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("boards");
    for board in Board::all() {
        let (spec, name) = student_spec(board);
        let path = dir.join(boards::file_name(board, &spec));
        if std::env::var_os("FLIMGRU_BLESS").is_some() {
            boards::write_board_verilog(board, &spec, &board.default_config(), &name, &dir)
                .unwrap();
        }
        let want = student_verilog(board);
        let have = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; regenerate it with `FLIMGRU_BLESS=1 cargo test --test boards`",
                path.display()
            )
        });
        assert!(
            have == want,
            "{} is stale (model, engine or board logic changed); regenerate it with `FLIMGRU_BLESS=1 cargo test --test boards`",
            path.display()
        );
        assert!(have.contains(&format!("{:016x}", export::model_checksum(spec.model()))));
        assert_lint_clean(&have, &format!("student-{board}"));
    }
}

/// yosys `synth_<family>` of a tiny board top; the vendor cells the top
/// instantiates must appear in the statistics (so yosys knew them).
fn synth(board: Board, cfg: BoardConfig, cells: &[&str]) {
    let v = boards::board_verilog(board, &tiny_spec(board, 1), &cfg, "tiny").unwrap();
    let t0 = Instant::now();
    let synthesis = yosys::run(
        yosys::SYSTEM,
        board.family(),
        &v,
        &build_dir(&format!("yosys-{board}")),
        yosys::Outputs::Log,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let stats = synthesis.statistics();
    eprintln!(
        "{}: {:.1} s",
        board.family().yosys_command(),
        t0.elapsed().as_secs_f64()
    );
    for c in cells {
        assert!(
            stats.contains(c),
            "{board}: no {c} in the synthesis statistics:\n{stats}"
        );
    }
}

#[test]
fn yosys_synthesises_the_ulx3s_top_for_ecp5() {
    synth(
        Board::Ulx3s,
        Board::Ulx3s.default_config(),
        &["EHXPLLL", "TRELLIS_FF", "MULT18X18D"],
    );
}

#[test]
fn yosys_synthesises_the_arty_top_for_xilinx() {
    synth(
        Board::ArtyA7,
        Board::ArtyA7.default_config(),
        &["MMCME2_BASE", "BUFG", "DSP48E1", "FDRE"],
    );
}

#[test]
fn yosys_synthesises_the_icebreaker_top_for_ice40() {
    synth(
        Board::IceBreaker,
        BoardConfig {
            clock_mhz: 24.0,
            baud: 1_000_000,
        },
        &["SB_PLL40_PAD", "SB_DFF", "SB_MAC16"],
    );
}
