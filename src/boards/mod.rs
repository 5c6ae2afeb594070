//! FPGA board top levels around the engine (docs/boards.md): ULX3S
//! (ECP5), Arty A7-100T (Artix-7) and iCEBreaker (iCE40 UP5K), each a
//! rust-hdl block holding the engine, a clock block on the vendor's PLL,
//! status LEDs, and a byte bridge fed by the board's USB-UART (and, on
//! ULX3S and Arty, a byte-wide parallel port on GPIO pins). The
//! constraint files are kept by hand in constraints/; the generated
//! Verilog of the shipped student goes to boards/.
//!
//! ```text
//!  oscillator -> pll -> clock of everything below
//!  uart rx  -> uart_rx --\                         /--> uart_tx -> uart tx
//!                         > bridge <-> engine     <
//!  gpio in  -> parallel -/  (bytes <-> beats,      \--> parallel -> gpio out
//!                            results -> records)
//! ```
//!
//! One block per file: [`uart_rx`], [`uart_tx`], [`bridge`],
//! [`parallel`], [`pll`], [`core`] (what every top shares), [`ulx3s`],
//! [`arty`], [`icebreaker`]; [`protocol`] is the host side of the byte
//! protocol, [`sim`] drives a whole top in rust-hdl's simulator like a
//! host would.

pub mod arty;
pub mod bridge;
pub mod core;
pub mod family;
pub mod floorplan;
pub mod icebreaker;
pub mod parallel;
pub mod pll;
pub mod protocol;
pub mod sim;
pub mod uart_rx;
pub mod uart_tx;
pub mod ulx3s;

pub use family::Family;
pub use protocol::{decode_results, encode_histograms, PixelResult};

use crate::data::GateGrid;
use crate::export;
use crate::fixed::QuantModel;
use crate::rtl::{CircuitSpec, Dsp, Layout};
use anyhow::{bail, Context, Result};
use pll::PllPlan;
use rust_hdl::prelude::Block;
use std::path::{Path, PathBuf};

/// The supported boards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Board {
    Ulx3s,
    ArtyA7,
    IceBreaker,
}

impl std::str::FromStr for Board {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Board> {
        match s.to_ascii_lowercase().as_str() {
            "ulx3s" => Ok(Board::Ulx3s),
            "arty" | "arty-a7" | "arty_a7" | "artya7" => Ok(Board::ArtyA7),
            "icebreaker" => Ok(Board::IceBreaker),
            _ => bail!("unknown board `{s}` (known: ulx3s, arty, icebreaker)"),
        }
    }
}

impl std::fmt::Display for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Board {
    pub fn all() -> [Board; 3] {
        [Board::Ulx3s, Board::ArtyA7, Board::IceBreaker]
    }

    /// The name `FromStr` accepts and `Display` prints.
    pub fn name(&self) -> &'static str {
        match self {
            Board::Ulx3s => "ulx3s",
            Board::ArtyA7 => "arty",
            Board::IceBreaker => "icebreaker",
        }
    }

    /// The FPGA family of the board's device.
    pub fn family(&self) -> Family {
        match self {
            Board::Ulx3s => Family::Ecp5,
            Board::ArtyA7 => Family::Xilinx7,
            Board::IceBreaker => Family::Ice40,
        }
    }

    /// How the engine's multipliers are written for the board's family.
    pub fn dsp(&self) -> Dsp {
        self.family().dsp()
    }

    pub fn device(&self) -> &'static str {
        match self {
            Board::Ulx3s => "LFE5U-85F",
            Board::ArtyA7 => "xc7a100tcsg324-1",
            Board::IceBreaker => "iCE40UP5K",
        }
    }

    pub fn package(&self) -> &'static str {
        match self {
            Board::Ulx3s => "CABGA381",
            Board::ArtyA7 => "csg324",
            Board::IceBreaker => "SG48",
        }
    }

    pub fn oscillator_mhz(&self) -> f64 {
        match self {
            Board::Ulx3s => 25.0,
            Board::ArtyA7 => 100.0,
            Board::IceBreaker => 12.0,
        }
    }

    /// The constraint file, relative to the repository root.
    pub fn constraints(&self) -> &'static str {
        match self {
            Board::Ulx3s => "constraints/ulx3s.lpf",
            Board::ArtyA7 => "constraints/arty_a7.xdc",
            Board::IceBreaker => "constraints/icebreaker.pcf",
        }
    }

    pub fn constraints_text(&self) -> &'static str {
        match self {
            Board::Ulx3s => include_str!("../../constraints/ulx3s.lpf"),
            Board::ArtyA7 => include_str!("../../constraints/arty_a7.xdc"),
            Board::IceBreaker => include_str!("../../constraints/icebreaker.pcf"),
        }
    }

    /// Whether the board has the parallel port.
    pub fn has_parallel_port(&self) -> bool {
        !matches!(self, Board::IceBreaker)
    }

    /// The layout the board's committed Verilog is built with (P and M
    /// per board; W is the model's, 8 for the shipped student).
    pub fn default_layout(&self) -> Layout {
        let (lanes, macs) = match self {
            Board::Ulx3s => (4, 32),
            Board::ArtyA7 => (4, 32),
            Board::IceBreaker => (1, 1),
        };
        Layout { lanes, macs }
    }

    /// The build of `model` on `grid` with `layout` and the board's
    /// multiplier form ([`Board::dsp`]).
    pub fn spec(
        &self,
        model: impl Into<std::sync::Arc<QuantModel>>,
        grid: GateGrid,
        layout: Layout,
    ) -> Result<CircuitSpec> {
        CircuitSpec::new(model, grid, layout, self.dsp())
    }

    /// Whether the board's FPGA builds multipliers of form `dsp`: the
    /// inferred form everywhere, a vendor primitive on its own family only.
    pub fn check_dsp(&self, dsp: Dsp) -> Result<()> {
        match dsp {
            Dsp::Inferred => Ok(()),
            d if d == self.dsp() => Ok(()),
            d => bail!(
                "{self} is {}: its tops cannot hold {} multipliers (use inferred or {})",
                self.family(),
                d.name(),
                self.dsp().name()
            ),
        }
    }

    /// The default clock and baud rate.
    pub fn default_config(&self) -> BoardConfig {
        BoardConfig::default_for(*self)
    }

    /// The PLL plan for `mhz` on this board.
    pub fn plan_clock(&self, mhz: f64) -> Result<PllPlan> {
        let f = self.oscillator_mhz();
        match self {
            Board::Ulx3s => pll::plan_ecp5(f, mhz),
            Board::ArtyA7 => pll::plan_mmcm(f, mhz),
            Board::IceBreaker => pll::plan_ice40(f, mhz),
        }
    }
}

/// Engine clock (MHz, made by the PLL from the oscillator) and UART baud rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoardConfig {
    pub clock_mhz: f64,
    pub baud: u32,
}

impl BoardConfig {
    /// ULX3S and Arty: 30 MHz (below the ECP5 post-route Fmax, docs/hardware.md); iCEBreaker: its 12 MHz oscillator, no PLL;
    /// 1,000,000 baud (an exact divisor at all three clocks, and a rate
    /// both FTDI chips make exactly).
    pub fn default_for(board: Board) -> BoardConfig {
        let clock_mhz = match board {
            Board::Ulx3s | Board::ArtyA7 => 30.0,
            Board::IceBreaker => 12.0,
        };
        BoardConfig {
            clock_mhz,
            baud: 1_000_000,
        }
    }
}

/// Largest relative error of the UART's bit time.
pub const BAUD_TOLERANCE: f64 = 0.02;

/// A UART divisor must be 2..=65535 clock cycles per bit.
pub(crate) fn check_divisor(divisor: u32) -> Result<()> {
    if !(2..=65_535).contains(&divisor) {
        bail!("UART baud divisor {divisor} clock cycles per bit is outside 2..=65535");
    }
    Ok(())
}

/// Everything a top derives from its configuration.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub board: Board,
    /// The engine's layout (the rest of the build is the spec's).
    pub layout: Layout,
    pub pll: PllPlan,
    pub baud: u32,
    /// Clock cycles per UART bit.
    pub divisor: u32,
    /// The baud rate the divisor gives at the achieved clock.
    pub actual_baud: f64,
    pub heartbeat_bit: u32,
}

impl Settings {
    /// Plan the clock and the UART divisor for a top around the engine of
    /// `spec`; errors name the problem.
    pub fn new(board: Board, spec: &CircuitSpec, cfg: &BoardConfig) -> Result<Settings> {
        board.check_dsp(spec.dsp())?;
        let pll = board
            .plan_clock(cfg.clock_mhz)
            .with_context(|| format!("{board}: clock"))?;
        let hz = pll.output_mhz * 1e6;
        if cfg.baud == 0 {
            bail!("{board}: UART baud rate 0 is not a rate");
        }
        let d = (hz / cfg.baud as f64).round();
        if d < 2.0 {
            bail!(
                "{board}: UART baud rate {} is too high for the {:.4} MHz clock (baud divisor {d} < 2 clock cycles per bit; at most {} baud)",
                cfg.baud,
                pll.output_mhz,
                (hz / 2.0).floor()
            );
        }
        if d > 65_535.0 {
            bail!(
                "{board}: UART baud rate {} is too low for the {:.4} MHz clock (baud divisor {d} > 65535 clock cycles per bit; at least {} baud)",
                cfg.baud,
                pll.output_mhz,
                (hz / 65_535.0).ceil()
            );
        }
        let divisor = d as u32;
        let actual_baud = hz / divisor as f64;
        let err = (actual_baud - cfg.baud as f64).abs() / cfg.baud as f64;
        if err > BAUD_TOLERANCE {
            bail!(
                "{board}: UART baud rate {} is not reachable from the {:.4} MHz clock: divisor {divisor} gives {actual_baud:.0} baud ({:.1} % off, more than {} %)",
                cfg.baud,
                pll.output_mhz,
                err * 100.0,
                BAUD_TOLERANCE * 100.0
            );
        }
        // Toggle period of counter bit k is 2^k cycles: pick about 0.5 s.
        let heartbeat_bit = ((hz * 0.5).log2().round() as u32).clamp(1, 31);
        Ok(Settings {
            board,
            layout: spec.layout(),
            pll,
            baud: cfg.baud,
            divisor,
            actual_baud,
            heartbeat_bit,
        })
    }
}

/// Pins a host (or a test) drives, board-neutral.
#[derive(Clone, Copy, Debug)]
pub struct HostPins {
    /// The UART line into the FPGA (idle high).
    pub uart_rx: bool,
    pub par_select: bool,
    pub par_in_data: u8,
    pub par_in_valid: bool,
    pub par_out_ready: bool,
}

impl Default for HostPins {
    fn default() -> Self {
        HostPins {
            uart_rx: true,
            par_select: false,
            par_in_data: 0,
            par_in_valid: false,
            par_out_ready: false,
        }
    }
}

/// Pins the board drives, board-neutral (LEDs as "on").
#[derive(Clone, Copy, Debug, Default)]
pub struct TopPins {
    pub uart_tx: bool,
    pub par_in_ready: bool,
    pub par_out_data: u8,
    pub par_out_valid: bool,
    pub heartbeat: bool,
    pub locked: bool,
    pub busy: bool,
    pub error: bool,
}

/// What the simulation harness ([`sim`]) needs of a board top.
pub trait BoardTop: Block {
    fn settings(&self) -> &Settings;
    /// Set the host-driven pins (applied at the next settle).
    fn drive(&mut self, pins: &HostPins);
    /// Set the oscillator pin.
    fn clock(&mut self, high: bool);
    /// Read the board-driven pins.
    fn sense(&self) -> TopPins;
}

/// The header comment of a board top's Verilog.
pub fn header(s: &Settings, spec: &CircuitSpec, name: &str) -> String {
    let b = s.board;
    let ports = match b {
        Board::Ulx3s => "clk_25mhz; ftdi_txd (in), ftdi_rxd (out); sw0; led0..led4; par_in_data[7:0], par_in_valid, par_in_ready, par_out_data[7:0], par_out_valid, par_out_ready",
        Board::ArtyA7 => "clk100mhz; uart_txd_in (in), uart_rxd_out (out); sw0; led0..led3; par_in_data[7:0], par_in_valid, par_in_ready, par_out_data[7:0], par_out_valid, par_out_ready",
        Board::IceBreaker => "clk; rx (in), tx (out); ledr_n, ledg_n",
    };
    format!(
        "// flimgru board top for {board} ({device}, {package}), generated by flimgru::boards\n\
         // (flimgru {version}, rust-hdl 0.46 + the exporter's loop-unrolling fix and lint\n\
         // post-pass, docs/export.md; board logic docs/boards.md). Do not edit.\n\
         //\n\
         //   constraints     {constraints}\n\
         //   clock           {clock:.4} MHz: {pll}\n\
         //   UART            {baud} baud requested, divisor {div} -> {actual:.0} baud, 8N1\n\
         {build}\
         //\n\
         // Top module `{top}`; ports: {ports}.\n\
         // Protocol: host sends 16-bit LE counts gate-major per group of P pixels; board answers\n\
         // 12-byte records 0xA5, pixel u32, tau1 u16, tau2 u16, fraction u16, xor (docs/boards.md).\n",
        board = b,
        device = b.device(),
        package = b.package(),
        version = env!("CARGO_PKG_VERSION"),
        constraints = b.constraints(),
        clock = s.pll.output_mhz,
        pll = s.pll.describe(),
        baud = s.baud,
        div = s.divisor,
        actual = s.actual_baud,
        build = export::build_lines(spec, name),
        top = export::TOP,
    )
}

/// Verilog of the board top (module name `top`) wrapping the engine of
/// `spec`: rust-hdl's generator through [`export::generate::generate`] and
/// [`export::postpass::run`] (as [`export::verilog`]), with a header
/// comment (board, achieved clock, baud, W/P/M, model checksum).
pub fn board_verilog(
    board: Board,
    spec: &CircuitSpec,
    cfg: &BoardConfig,
    name: &str,
) -> Result<String> {
    let (raw, settings) = match board {
        Board::Ulx3s => {
            let t = ulx3s::Ulx3sTop::new(spec, cfg)?;
            (export::generate::generate(&t)?, *t.settings())
        }
        Board::ArtyA7 => {
            let t = arty::ArtyTop::new(spec, cfg)?;
            (export::generate::generate(&t)?, *t.settings())
        }
        Board::IceBreaker => {
            let t = icebreaker::IceBreakerTop::new(spec, cfg)?;
            (export::generate::generate(&t)?, *t.settings())
        }
    };
    let body = export::postpass::run(&raw).context("lint post-pass of the board top's Verilog")?;
    Ok(format!("{}{}", header(&settings, spec, name), body))
}

/// The file name of a board top: `ulx3s_w8_p4_m32.v` (the board and
/// [`CircuitSpec::name`]), with the multiplier form added when it is not
/// the board's own (`ulx3s_w8_p4_m32_inferred.v`).
pub fn file_name(board: Board, spec: &CircuitSpec) -> String {
    let form = if spec.dsp() == board.dsp() {
        String::new()
    } else {
        format!("_{}", spec.dsp().name())
    };
    format!("{}_{}{form}.v", board.name(), spec.name())
}

/// Write [`board_verilog`] to `out_dir/`[`file_name`] atomically; returns
/// the path.
pub fn write_board_verilog(
    board: Board,
    spec: &CircuitSpec,
    cfg: &BoardConfig,
    name: &str,
    out_dir: &Path,
) -> Result<PathBuf> {
    let text = board_verilog(board, spec, cfg, name)?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let path = out_dir.join(file_name(board, spec));
    crate::output::write_bytes(&path, text.as_bytes())?;
    Ok(path)
}

/// `verilator --lint-only -Wall` on a board top (written to `dir/top.v`)
/// with the lint-only stand-ins of the vendor primitives
/// ([`pll::lint_stubs`], `dir/vendor_stubs.v`): the warning and error
/// lines, empty when clean.
pub fn lint(verilog: &str, dir: &Path) -> Result<Vec<String>> {
    export::lint_with(verilog, &[("vendor_stubs.v", pll::lint_stubs())], dir)
}
