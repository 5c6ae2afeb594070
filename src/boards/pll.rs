//! Clock generation: the board oscillator through the FPGA's PLL to the
//! engine clock, as a `Verilog::Custom` block instantiating the vendor
//! primitive (ECP5 `EHXPLLL`, 7-series `MMCME2_BASE` + `BUFG`, iCE40
//! `SB_PLL40_PAD`, or a plain wire). Its Rust simulation model passes the
//! input clock through and reports lock at once: the rust-hdl simulation
//! runs in the engine's clock, whatever its frequency.
//!
//! The planners search the dividers of each primitive for the requested
//! frequency under the device's limits and refuse one they cannot reach
//! within [`TOLERANCE`]:
//! - ECP5 (Lattice TN1263, as in Trellis' `ecppll`): f_out = f_in /
//!   CLKI_DIV x CLKFB_DIV (feedback from CLKOP), VCO = f_out x CLKOP_DIV
//!   in 400..=800 MHz, PFD = f_in / CLKI_DIV >= 3.125 MHz, dividers
//!   1..=128, f_out 3.125..=400 MHz.
//! - Artix-7 -1 MMCM (DS181): VCO = f_in x M / D in 600..=1200 MHz, PFD
//!   = f_in / D in 10..=450 MHz, M (CLKFBOUT_MULT_F) 2..=64, D
//!   (DIVCLK_DIVIDE) 1..=106, O (CLKOUT0_DIVIDE_F) 1..=128 (integers), f_out
//!   <= 464 MHz (BUFG).
//! - iCE40 (SB_PLL40, simple feedback, as `icepll`): PFD = f_in /
//!   (DIVR + 1) in 10..=133 MHz, VCO = PFD x (DIVF + 1) in 533..=1066
//!   MHz, f_out = VCO / 2^DIVQ in 16..=275 MHz, DIVR 0..=15, DIVF
//!   0..=127, DIVQ 1..=6. A requested frequency equal to the oscillator's
//!   means no PLL.

use anyhow::{bail, Result};
use rust_hdl::prelude::*;

/// Largest relative error between requested and achieved frequency.
pub const TOLERANCE: f64 = 0.005;

/// The primitive and its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PllSettings {
    /// No PLL: the oscillator drives the logic.
    Direct,
    Ecp5 {
        clki_div: u32,
        clkfb_div: u32,
        clkop_div: u32,
    },
    Mmcm {
        divclk: u32,
        mult: u32,
        clkout0_div: u32,
    },
    Ice40 {
        divr: u32,
        divf: u32,
        divq: u32,
        filter_range: u32,
    },
}

/// A planned clock: settings, input, achieved output, VCO and PFD.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PllPlan {
    pub settings: PllSettings,
    pub input_mhz: f64,
    pub output_mhz: f64,
    pub vco_mhz: f64,
    pub pfd_mhz: f64,
}

impl PllPlan {
    /// One line for headers and reports.
    pub fn describe(&self) -> String {
        match self.settings {
            PllSettings::Direct => format!("{} MHz oscillator, no PLL", self.input_mhz),
            PllSettings::Ecp5 {
                clki_div,
                clkfb_div,
                clkop_div,
            } => format!(
                "EHXPLLL {} MHz / CLKI_DIV {clki_div} x CLKFB_DIV {clkfb_div} = {:.4} MHz (PFD {:.4} MHz, VCO {:.2} MHz = CLKOP x CLKOP_DIV {clkop_div})",
                self.input_mhz, self.output_mhz, self.pfd_mhz, self.vco_mhz
            ),
            PllSettings::Mmcm {
                divclk,
                mult,
                clkout0_div,
            } => format!(
                "MMCME2_BASE {} MHz / DIVCLK_DIVIDE {divclk} x CLKFBOUT_MULT_F {mult} / CLKOUT0_DIVIDE_F {clkout0_div} = {:.4} MHz (PFD {:.4} MHz, VCO {:.2} MHz)",
                self.input_mhz, self.output_mhz, self.pfd_mhz, self.vco_mhz
            ),
            PllSettings::Ice40 {
                divr,
                divf,
                divq,
                filter_range,
            } => format!(
                "SB_PLL40_PAD {} MHz / (DIVR {divr} + 1) x (DIVF {divf} + 1) / 2^DIVQ {divq} = {:.4} MHz (PFD {:.4} MHz, VCO {:.2} MHz, FILTER_RANGE {filter_range})",
                self.input_mhz, self.output_mhz, self.pfd_mhz, self.vco_mhz
            ),
        }
    }
}

fn check_request(family: &str, input: f64, want: f64, lo: f64, hi: f64) -> Result<()> {
    if !(want.is_finite() && want > 0.0) {
        bail!("clock frequency {want} MHz is not a positive number");
    }
    if want < lo || want > hi {
        bail!(
            "clock frequency {want} MHz is outside what the {family} PLL can make from the {input} MHz oscillator ({lo}..={hi} MHz)"
        );
    }
    Ok(())
}

fn accept(family: &str, input: f64, want: f64, best: Option<PllPlan>) -> Result<PllPlan> {
    match best {
        Some(p) if (p.output_mhz - want).abs() <= TOLERANCE * want => Ok(p),
        Some(p) => bail!(
            "clock frequency {want} MHz is not reachable by the {family} PLL from the {input} MHz oscillator within {:.1} %: the nearest is {:.4} MHz",
            TOLERANCE * 100.0,
            p.output_mhz
        ),
        None => bail!("clock frequency {want} MHz: no {family} PLL setting satisfies the VCO and PFD limits"),
    }
}

/// Whether `cand` beats `best`: closer to `want`, or as close with the VCO
/// nearer the middle of its range `mid` (as the vendor tools prefer).
fn better(best: &Option<PllPlan>, cand: &PllPlan, want: f64, mid: f64) -> bool {
    match best {
        None => true,
        Some(b) => {
            let (ec, eb) = ((cand.output_mhz - want).abs(), (b.output_mhz - want).abs());
            ec < eb - 1e-9
                || (ec <= eb + 1e-9 && (cand.vco_mhz - mid).abs() < (b.vco_mhz - mid).abs())
        }
    }
}

/// ECP5 EHXPLLL dividers for `want` MHz from `input` MHz.
pub fn plan_ecp5(input: f64, want: f64) -> Result<PllPlan> {
    check_request("ECP5", input, want, 3.125, 400.0)?;
    let mut best = None;
    for clki_div in 1..=128u32 {
        let pfd = input / clki_div as f64;
        if !(3.125..=400.0).contains(&pfd) {
            continue;
        }
        for clkfb_div in 1..=128u32 {
            let out = pfd * clkfb_div as f64;
            if !(3.125..=400.0).contains(&out) {
                continue;
            }
            for clkop_div in 1..=128u32 {
                let vco = out * clkop_div as f64;
                if !(400.0..=800.0).contains(&vco) {
                    continue;
                }
                let cand = PllPlan {
                    settings: PllSettings::Ecp5 {
                        clki_div,
                        clkfb_div,
                        clkop_div,
                    },
                    input_mhz: input,
                    output_mhz: out,
                    vco_mhz: vco,
                    pfd_mhz: pfd,
                };
                if better(&best, &cand, want, 600.0) {
                    best = Some(cand);
                }
            }
        }
    }
    accept("ECP5", input, want, best)
}

/// Artix-7 (-1) MMCME2_BASE dividers for `want` MHz from `input` MHz.
pub fn plan_mmcm(input: f64, want: f64) -> Result<PllPlan> {
    check_request("Artix-7 MMCM", input, want, 4.69, 464.0)?;
    let mut best = None;
    for divclk in 1..=106u32 {
        let pfd = input / divclk as f64;
        if !(10.0..=450.0).contains(&pfd) {
            continue;
        }
        for mult in 2..=64u32 {
            let vco = pfd * mult as f64;
            if !(600.0..=1200.0).contains(&vco) {
                continue;
            }
            for clkout0_div in 1..=128u32 {
                let out = vco / clkout0_div as f64;
                if out > 464.0 {
                    continue;
                }
                let cand = PllPlan {
                    settings: PllSettings::Mmcm {
                        divclk,
                        mult,
                        clkout0_div,
                    },
                    input_mhz: input,
                    output_mhz: out,
                    vco_mhz: vco,
                    pfd_mhz: pfd,
                };
                if better(&best, &cand, want, 900.0) {
                    best = Some(cand);
                }
            }
        }
    }
    accept("Artix-7 MMCM", input, want, best)
}

/// iCE40 SB_PLL40 (simple feedback) dividers for `want` MHz from `input`
/// MHz; `want == input` is [`PllSettings::Direct`].
pub fn plan_ice40(input: f64, want: f64) -> Result<PllPlan> {
    if want == input {
        return Ok(PllPlan {
            settings: PllSettings::Direct,
            input_mhz: input,
            output_mhz: input,
            vco_mhz: 0.0,
            pfd_mhz: 0.0,
        });
    }
    check_request("iCE40", input, want, 16.0, 275.0)?;
    let mut best = None;
    for divr in 0..=15u32 {
        let pfd = input / (divr + 1) as f64;
        if !(10.0..=133.0).contains(&pfd) {
            continue;
        }
        for divf in 0..=127u32 {
            let vco = pfd * (divf + 1) as f64;
            if !(533.0..=1066.0).contains(&vco) {
                continue;
            }
            for divq in 1..=6u32 {
                let out = vco / (1u32 << divq) as f64;
                if !(16.0..=275.0).contains(&out) {
                    continue;
                }
                let filter_range = match pfd {
                    f if f < 17.0 => 1,
                    f if f < 26.0 => 2,
                    f if f < 44.0 => 3,
                    f if f < 66.0 => 4,
                    f if f < 101.0 => 5,
                    _ => 6,
                };
                let cand = PllPlan {
                    settings: PllSettings::Ice40 {
                        divr,
                        divf,
                        divq,
                        filter_range,
                    },
                    input_mhz: input,
                    output_mhz: out,
                    vco_mhz: vco,
                    pfd_mhz: pfd,
                };
                if better(&best, &cand, want, 800.0) {
                    best = Some(cand);
                }
            }
        }
    }
    accept("iCE40", input, want, best)
}

/// The clock block: `clock_in` (the oscillator pin) to `clock_out` (the
/// logic's clock), `locked` high once the PLL has locked.
#[derive(LogicBlock)]
pub struct Pll {
    pub clock_in: Signal<In, Clock>,
    pub clock_out: Signal<Out, Clock>,
    pub locked: Signal<Out, Bit>,
    _plan: PllPlan,
}

impl Pll {
    pub fn new(plan: PllPlan) -> Pll {
        Pll {
            clock_in: Default::default(),
            clock_out: Default::default(),
            locked: Default::default(),
            _plan: plan,
        }
    }

    pub fn plan(&self) -> PllPlan {
        self._plan
    }
}

/// Trim a frequency for a Verilog attribute ("50", "48.5").
fn mhz_attr(f: f64) -> String {
    let s = format!("{f:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl Logic for Pll {
    fn update(&mut self) {
        self.clock_out.next = self.clock_in.val();
        self.locked.next = true;
    }
    fn connect(&mut self) {
        self.clock_out.connect();
        self.locked.connect();
    }
    fn hdl(&self) -> Verilog {
        let p = self._plan;
        let body = match p.settings {
            PllSettings::Direct => "\
always @(*) begin
   clock_out = clock_in;
   locked = 1'b1;
end"
            .to_string(),
            PllSettings::Ecp5 {
                clki_div,
                clkfb_div,
                clkop_div,
            } => format!(
                "\
// Lattice ECP5 PLL, feedback from CLKOP (settings as Trellis' ecppll writes them).
wire clkop;
wire lock_w;
(* FREQUENCY_PIN_CLKI=\"{fin}\" *)
(* FREQUENCY_PIN_CLKOP=\"{fout}\" *)
(* ICP_CURRENT=\"12\" *) (* LPF_RESISTOR=\"8\" *) (* MFG_ENABLE_FILTEROPAMP=\"1\" *) (* MFG_GMCREF_SEL=\"2\" *)
EHXPLLL #(
   .PLLRST_ENA(\"DISABLED\"),
   .INTFB_WAKE(\"DISABLED\"),
   .STDBY_ENABLE(\"DISABLED\"),
   .DPHASE_SOURCE(\"DISABLED\"),
   .OUTDIVIDER_MUXA(\"DIVA\"),
   .OUTDIVIDER_MUXB(\"DIVB\"),
   .OUTDIVIDER_MUXC(\"DIVC\"),
   .OUTDIVIDER_MUXD(\"DIVD\"),
   .CLKI_DIV({clki_div}),
   .CLKOP_ENABLE(\"ENABLED\"),
   .CLKOP_DIV({clkop_div}),
   .CLKOP_CPHASE({cphase}),
   .CLKOP_FPHASE(0),
   .FEEDBK_PATH(\"CLKOP\"),
   .CLKFB_DIV({clkfb_div})
) pll_i (
   .RST(1'b0),
   .STDBY(1'b0),
   .CLKI(clock_in),
   .CLKOP(clkop),
   .CLKFB(clkop),
   .PHASESEL0(1'b0),
   .PHASESEL1(1'b0),
   .PHASEDIR(1'b1),
   .PHASESTEP(1'b1),
   .PHASELOADREG(1'b1),
   .PLLWAKESYNC(1'b0),
   .ENCLKOP(1'b0),
   .LOCK(lock_w)
);
always @(*) begin
   clock_out = clkop;
   locked = lock_w;
end",
                fin = mhz_attr(p.input_mhz),
                fout = mhz_attr(p.output_mhz),
                cphase = clkop_div / 2,
            ),
            PllSettings::Mmcm {
                divclk,
                mult,
                clkout0_div,
            } => format!(
                "\
// Xilinx 7-series MMCM, feedback CLKFBOUT -> CLKFBIN, CLKOUT0 on a global buffer.
wire clkfb;
wire clkout0;
wire clkout0_g;
wire lock_w;
MMCME2_BASE #(
   .BANDWIDTH(\"OPTIMIZED\"),
   .CLKIN1_PERIOD({period:.3}),
   .DIVCLK_DIVIDE({divclk}),
   .CLKFBOUT_MULT_F({mult}.000),
   .CLKOUT0_DIVIDE_F({clkout0_div}.000),
   .STARTUP_WAIT(\"FALSE\")
) mmcm_i (
   .CLKIN1(clock_in),
   .CLKFBIN(clkfb),
   .CLKFBOUT(clkfb),
   .CLKOUT0(clkout0),
   .LOCKED(lock_w),
   .PWRDWN(1'b0),
   .RST(1'b0)
);
BUFG bufg_i (
   .I(clkout0),
   .O(clkout0_g)
);
always @(*) begin
   clock_out = clkout0_g;
   locked = lock_w;
end",
                period = 1000.0 / p.input_mhz,
            ),
            PllSettings::Ice40 {
                divr,
                divf,
                divq,
                filter_range,
            } => format!(
                "\
// Lattice iCE40 PLL on the oscillator's pad (simple feedback, as icepll writes it).
wire pllout;
wire lock_w;
SB_PLL40_PAD #(
   .FEEDBACK_PATH(\"SIMPLE\"),
   .DIVR(4'd{divr}),
   .DIVF(7'd{divf}),
   .DIVQ(3'd{divq}),
   .FILTER_RANGE(3'd{filter_range})
) pll_i (
   .PACKAGEPIN(clock_in),
   .PLLOUTGLOBAL(pllout),
   .LOCK(lock_w),
   .RESETB(1'b1),
   .BYPASS(1'b0)
);
always @(*) begin
   clock_out = pllout;
   locked = lock_w;
end"
            ),
        };
        Verilog::Custom(body)
    }
}

/// Stand-ins for the vendor primitives, for Verilator's lint and the
/// co-simulation of [`Dsp::Ecp5`](crate::rtl::Dsp::Ecp5) Verilog (never
/// synthesised: yosys and the vendor tools have the real cells). Each
/// declares exactly the parameters and ports the [`Pll`] block or the
/// ECP5 multipliers use (a subset of the vendor's); the PLLs pass the
/// clock through, the `MULT18X18D` models its signed mode with the output
/// registered (the inputs registered or not), and
/// Verilator's `-Wall` has nothing to say about the stand-ins themselves.
pub fn lint_stubs() -> &'static str {
    "\
// Lint and simulation stand-ins for vendor primitives (flimgru::boards::pll::lint_stubs).
/* verilator lint_off DECLFILENAME */
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
module EHXPLLL #(
   parameter PLLRST_ENA = \"DISABLED\",
   parameter INTFB_WAKE = \"DISABLED\",
   parameter STDBY_ENABLE = \"DISABLED\",
   parameter DPHASE_SOURCE = \"DISABLED\",
   parameter OUTDIVIDER_MUXA = \"DIVA\",
   parameter OUTDIVIDER_MUXB = \"DIVB\",
   parameter OUTDIVIDER_MUXC = \"DIVC\",
   parameter OUTDIVIDER_MUXD = \"DIVD\",
   parameter CLKI_DIV = 1,
   parameter CLKOP_ENABLE = \"ENABLED\",
   parameter CLKOP_DIV = 8,
   parameter CLKOP_CPHASE = 0,
   parameter CLKOP_FPHASE = 0,
   parameter FEEDBK_PATH = \"CLKOP\",
   parameter CLKFB_DIV = 1
) (
   input wire RST, input wire STDBY, input wire CLKI, output wire CLKOP, input wire CLKFB,
   input wire PHASESEL0, input wire PHASESEL1, input wire PHASEDIR, input wire PHASESTEP,
   input wire PHASELOADREG, input wire PLLWAKESYNC, input wire ENCLKOP, output wire LOCK
);
   assign CLKOP = CLKI;
   assign LOCK = 1'b1;
endmodule
module MMCME2_BASE #(
   parameter BANDWIDTH = \"OPTIMIZED\",
   parameter real CLKIN1_PERIOD = 10.0,
   parameter DIVCLK_DIVIDE = 1,
   parameter real CLKFBOUT_MULT_F = 5.0,
   parameter real CLKOUT0_DIVIDE_F = 1.0,
   parameter STARTUP_WAIT = \"FALSE\"
) (
   input wire CLKIN1, input wire CLKFBIN, output wire CLKFBOUT, output wire CLKOUT0,
   output wire LOCKED, input wire PWRDWN, input wire RST
);
   assign CLKFBOUT = CLKIN1;
   assign CLKOUT0 = CLKIN1;
   assign LOCKED = 1'b1;
endmodule
// The subset of Lattice's MULT18X18D the engine instantiates
// (flimgru::rtl::Dsp::Ecp5): P registered on CLK0, A and B both registered
// on CLK0 or both not, signed, CE0 high, RST0 low; any other setting stops
// the simulation.
module MULT18X18D #(
   parameter REG_INPUTA_CLK = \"NONE\",
   parameter REG_INPUTB_CLK = \"NONE\",
   parameter REG_OUTPUT_CLK = \"NONE\",
   parameter REG_PIPELINE_CLK = \"NONE\",
   parameter GSR = \"ENABLED\"
) (
   input wire A0, input wire A1, input wire A2, input wire A3, input wire A4, input wire A5, input wire A6, input wire A7, input wire A8, input wire A9, input wire A10, input wire A11, input wire A12, input wire A13, input wire A14, input wire A15, input wire A16, input wire A17,
   input wire B0, input wire B1, input wire B2, input wire B3, input wire B4, input wire B5, input wire B6, input wire B7, input wire B8, input wire B9, input wire B10, input wire B11, input wire B12, input wire B13, input wire B14, input wire B15, input wire B16, input wire B17,
   input wire SIGNEDA, input wire SIGNEDB, input wire SOURCEA, input wire SOURCEB,
   input wire CLK0, input wire CE0, input wire RST0,
   output wire P0, output wire P1, output wire P2, output wire P3, output wire P4, output wire P5, output wire P6, output wire P7, output wire P8, output wire P9, output wire P10, output wire P11, output wire P12, output wire P13, output wire P14, output wire P15, output wire P16, output wire P17, output wire P18, output wire P19, output wire P20, output wire P21, output wire P22, output wire P23, output wire P24, output wire P25, output wire P26, output wire P27, output wire P28, output wire P29, output wire P30, output wire P31, output wire P32, output wire P33, output wire P34, output wire P35
);
   wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
   wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
   reg signed [17:0] a_r = 18'sh0;
   reg signed [17:0] b_r = 18'sh0;
   reg signed [35:0] p_r = 36'sh0;
   wire signed [17:0] a_m = (REG_INPUTA_CLK == \"CLK0\") ? a_r : a;
   wire signed [17:0] b_m = (REG_INPUTB_CLK == \"CLK0\") ? b_r : b;
   always @(posedge CLK0) begin
      a_r <= a;
      b_r <= b;
      p_r <= a_m * b_m;
   end
   assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p_r;
   initial begin
      if ((REG_INPUTA_CLK != \"CLK0\" && REG_INPUTA_CLK != \"NONE\")
          || REG_INPUTB_CLK != REG_INPUTA_CLK || REG_OUTPUT_CLK != \"CLK0\"
          || REG_PIPELINE_CLK != \"NONE\")
         $fatal(1, \"MULT18X18D: only P registered on CLK0, A and B alike, is modelled\");
   end
   always @(posedge CLK0)
      if (SIGNEDA !== 1'b1 || SIGNEDB !== 1'b1 || SOURCEA !== 1'b0 || SOURCEB !== 1'b0
          || CE0 !== 1'b1 || RST0 !== 1'b0)
         $fatal(1, \"MULT18X18D: only signed A * B with CE0 = 1, RST0 = 0 is modelled\");
endmodule
module BUFG (input wire I, output wire O);
   assign O = I;
endmodule
module SB_PLL40_PAD #(
   parameter FEEDBACK_PATH = \"SIMPLE\",
   parameter [3:0] DIVR = 4'd0,
   parameter [6:0] DIVF = 7'd0,
   parameter [2:0] DIVQ = 3'd0,
   parameter [2:0] FILTER_RANGE = 3'd0
) (
   input wire PACKAGEPIN, output wire PLLOUTGLOBAL, output wire LOCK, input wire RESETB,
   input wire BYPASS
);
   assign PLLOUTGLOBAL = PACKAGEPIN;
   assign LOCK = 1'b1;
endmodule
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on DECLFILENAME */
"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecp5_plans_respect_the_limits() {
        for want in [25.0, 50.0, 62.5, 75.0, 100.0, 133.0, 200.0] {
            let p = plan_ecp5(25.0, want).unwrap();
            assert!(
                (p.output_mhz - want).abs() <= TOLERANCE * want,
                "{want}: {p:?}"
            );
            assert!(
                (400.0..=800.0).contains(&p.vco_mhz) && p.pfd_mhz >= 3.125,
                "{p:?}"
            );
            let PllSettings::Ecp5 {
                clki_div,
                clkfb_div,
                clkop_div,
            } = p.settings
            else {
                panic!()
            };
            let out = 25.0 / clki_div as f64 * clkfb_div as f64;
            assert!((out - p.output_mhz).abs() < 1e-9);
            assert!((out * clkop_div as f64 - p.vco_mhz).abs() < 1e-9);
        }
        let p = plan_ecp5(25.0, 50.0).unwrap();
        assert_eq!(p.output_mhz, 50.0);
        // 12 MHz needs 25 / 25 x 12, a PFD below 3.125 MHz.
        let e = plan_ecp5(25.0, 12.0).unwrap_err().to_string();
        assert!(
            e.contains("not reachable") && e.contains("nearest is 12.5000"),
            "{e}"
        );
        for (bad, why) in [(1.0, "outside"), (500.0, "outside"), (-3.0, "positive")] {
            let e = plan_ecp5(25.0, bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("MHz"), "{e}");
        }
    }

    #[test]
    fn mmcm_and_ice40_plans_respect_the_limits() {
        for want in [25.0, 50.0, 83.333, 100.0, 150.0] {
            let p = plan_mmcm(100.0, want).unwrap();
            assert!((p.output_mhz - want).abs() <= TOLERANCE * want, "{p:?}");
            assert!((600.0..=1200.0).contains(&p.vco_mhz) && (10.0..=450.0).contains(&p.pfd_mhz));
        }
        assert!(plan_mmcm(100.0, 900.0).is_err());
        for want in [16.125, 24.0, 30.0, 48.0, 100.5] {
            let p = plan_ice40(12.0, want).unwrap();
            assert!((p.output_mhz - want).abs() <= TOLERANCE * want, "{p:?}");
            assert!((533.0..=1066.0).contains(&p.vco_mhz) && (10.0..=133.0).contains(&p.pfd_mhz));
        }
        assert_eq!(
            plan_ice40(12.0, 12.0).unwrap().settings,
            PllSettings::Direct
        );
        let e = plan_ice40(12.0, 14.0).unwrap_err().to_string();
        assert!(e.contains("16..=275"), "{e}");
        let e = plan_ice40(12.0, 16.0).unwrap_err().to_string();
        assert!(e.contains("not reachable") && e.contains("16.1250"), "{e}");
    }

    #[test]
    fn the_simulation_model_passes_the_clock_through() {
        let mut p = Pll::new(plan_ecp5(25.0, 50.0).unwrap());
        p.connect_all();
        for clk in [true, false, true] {
            p.clock_in.next = Clock { clk };
            assert!(simulate(&mut p, 10));
            assert_eq!(p.clock_out.val().clk, clk);
            assert!(p.locked.val());
        }
        let Verilog::Custom(v) = p.hdl() else {
            panic!()
        };
        assert!(
            v.contains("EHXPLLL") && v.contains(".CLKFB_DIV(2)") && v.contains(".CLKOP_DIV(12)")
        );
    }
}
