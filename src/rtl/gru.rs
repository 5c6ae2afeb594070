//! The GRU engine: encoder over G steps, decoder over G steps from the
//! encoder's final state, head per decoder step, for P lanes sharing one
//! weight read per cycle and M MAC units per lane.
//!
//! Schedule. A GRU step has a dependency chain: the z and r rows need the
//! whole previous state h, the candidate rows need all of r (through
//! r * h), the next step needs all of h'. To keep the MACs busy across
//! that chain the engine runs two pixel sets (each of P lanes) half a step
//! apart: in every *slot* one set (the A set) computes its 2H z and r rows
//! while the other (the C set) computes its H candidate rows. Both walk the
//! same term index k, so each cycle reads one column k of the weight matrix
//! (3H weights: the 3H rows of a slot in NP = 3H / M passes of M rows, K =
//! H + 1 terms each: H state terms and the input term). A slot costs
//! NP K issue cycles plus [`DRAIN_CYCLES`] (the operand pipeline, the
//! pipelined MACs and the narrowing empty) plus [`BOUNDARY_CYCLES`] (the
//! state update of the next A set, whose h_j reaches the A set's read
//! three cycles after it starts (forwarded from its fourth stage) while
//! the reads trail the issue by two cycles, lands just in time); each set
//! advances half a step per slot, so a pixel group costs 2 G slots per set.
//! The state update h' = narrow(S c + z (h - c)) streams one unit per cycle
//! into the next slot just ahead of the operand stream that reads it; the
//! head rides on the A set's pass-0 state stream (its h is the previous
//! decoder step's output).

use super::lane::Lane;
use super::prim::{Dsp, Rom, MAC_LATENCY};
use super::{Acc, Addr};
use crate::fixed::{Format, QuantModel};
use rust_hdl::prelude::*;

#[derive(Copy, Clone, Debug, PartialEq, LogicState)]
pub enum SlotState {
    Boundary,
    Issue,
    Drain,
}

/// The static shape of the schedule.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub hidden: usize,
    pub gates: usize,
    pub macs: usize,
    pub lanes: usize,
    /// Passes per slot: 3H / M.
    pub passes: usize,
    /// Terms per pass: H + 1.
    pub terms: usize,
}

/// Cycles after a slot's last issue until its last row is narrowed into
/// z, r or c: stages 0b, 0c, the operand copies (1a), the MAC inputs (1b),
/// then the MAC pipeline.
pub const DRAIN_CYCLES: usize = 4 + MAC_LATENCY;

/// Cycles between the drain and the next slot's first issue: the state
/// update's h_j reaches the A set's read three cycles after it starts (the
/// lane forwards it from the fourth stage, which writes the RAM), the A
/// set reads h_j two cycles after issuing term j.
pub const BOUNDARY_CYCLES: usize = 3 - 2;

/// Cycles of one slot of hidden size `hidden` on `macs` MAC units.
pub fn slot_cycles(hidden: usize, macs: usize) -> usize {
    (3 * hidden / macs) * (hidden + 1) + DRAIN_CYCLES + BOUNDARY_CYCLES
}

// The m1/m2 stages below carry the schedule across the MAC pipeline.
const _: () = assert!(MAC_LATENCY == 3 && DRAIN_CYCLES == 7);

impl Shape {
    pub fn slot_cycles(&self) -> usize {
        slot_cycles(self.hidden, self.macs)
    }
}

#[derive(LogicBlock)]
pub struct Gru {
    pub clock: Signal<In, Clock>,
    // From the preprocessor.
    pub x_we: Signal<In, Bit>,
    pub x_set: Signal<In, Bit>,
    pub x_addr: Signal<In, Addr>,
    pub x_data: Vec<Signal<In, super::Code>>,
    pub x_done: Signal<In, Bit>,
    pub x_free0: Signal<Out, Bit>,
    pub x_free1: Signal<Out, Bit>,
    // To the extraction.
    pub ext_busy: Signal<In, Bit>,
    pub ext_load: Signal<Out, Bit>,
    pub amp1: Vec<Signal<Out, Acc>>,
    pub amp2: Vec<Signal<Out, Acc>>,
    pub sum1: Vec<Signal<Out, Acc>>,
    pub sum2: Vec<Signal<Out, Acc>>,
    // Debug: the head channels of every decoder step.
    pub dbg_valid: Signal<Out, Bit>,
    pub dbg_group: Signal<Out, Bits<32>>,
    pub dbg_step: Signal<Out, Addr>,
    /// Lane l channel c at index 3 l + c.
    pub dbg_channel: Vec<Signal<Out, Acc>>,
    /// Number of pixel groups started so far (for monitors).
    pub groups_started: Signal<Out, Bits<32>>,
    /// The P lanes.
    pub lane: Vec<Lane>,
    weight_rom: Vec<Rom<20>>,
    bias_rom: Vec<Rom<20>>,
    head_rom: Vec<Rom<20>>,
    slot: DFF<SlotState>,
    pass: DFF<Addr>,
    term: DFF<Addr>,
    rom_addr: DFF<Addr>,
    /// Drain cycle (DRAIN_CYCLES; BOUNDARY_CYCLES is one: no counter).
    drain: DFF<Bits<3>>,
    /// Stage 0 -> 0b -> 0c copies of what stage 1 needs (the operand
    /// pipeline of the lanes is two stages longer than the reads).
    d0_valid: DFF<Bit>,
    d0_first: DFF<Bit>,
    d0_pass: DFF<Addr>,
    d0_term: DFF<Addr>,
    d0_head: DFF<Bit>,
    /// Per unit: it holds an A-set row in this pass (registered decode).
    d0_unit_a: Vec<DFF<Bit>>,
    /// ROM addresses of the A set's and the C set's rows (encoder or
    /// decoder words), added at stage 0 so stage 0b is a select and the read.
    d0_waddr_a: DFF<Addr>,
    d0_waddr_c: DFF<Addr>,
    d0_baddr_a: DFF<Addr>,
    d0_baddr_c: DFF<Addr>,
    /// Per unit, the selected addresses one stage later (stage 0c), so the
    /// ROMs' data (two stages on) meets the MAC inputs at stage 1b. The
    /// A/C select sits before this register, not between it and the ROM
    /// (that select was P = 1's critical path).
    d1_waddr: Vec<DFF<Addr>>,
    d1_baddr: Vec<DFF<Addr>>,
    d1_valid: DFF<Bit>,
    d1_first: DFF<Bit>,
    d1_pass: DFF<Addr>,
    d1_term: DFF<Addr>,
    d1_head: DFF<Bit>,
    /// Stage 1b (the MAC inputs, one stage after the lanes' operand
    /// copies at stage 1a).
    s1b_valid: DFF<Bit>,
    s1b_first: DFF<Bit>,
    s1b_pass: DFF<Addr>,
    s1b_term: DFF<Addr>,
    /// Per unit: stage 1b feeds it the A set's operand (registered decode).
    s1_is_a: Vec<DFF<Bit>>,
    /// The stage-1b schedule carried across the MAC pipeline to stage 2.
    m1_valid: DFF<Bit>,
    m1_pass: DFF<Addr>,
    m1_term: DFF<Addr>,
    m2_valid: DFF<Bit>,
    m2_pass: DFF<Addr>,
    m2_term: DFF<Addr>,
    /// The head's last state term (its MAC takes `op_head` at stage 1)
    /// carried across its MAC pipeline.
    h1_last: DFF<Bit>,
    h2_last: DFF<Bit>,
    /// The set in its A slot (the current or last slot).
    a_set: DFF<Bit>,
    active: Vec<DFF<Bit>>,
    decoder: Vec<DFF<Bit>>,
    step: Vec<DFF<Addr>>,
    group: Vec<DFF<Bits<32>>>,
    x_ready: Vec<DFF<Bit>>,
    next_set: DFF<Bit>,
    next_group: DFF<Bits<32>>,
    head_valid: DFF<Bit>,
    head_first: DFF<Bit>,
    head_last: DFF<Bit>,
    head_step: DFF<Addr>,
    head_group: DFF<Bits<32>>,
    s1_valid: DFF<Bit>,
    s1_first: DFF<Bit>,
    s1_pass: DFF<Addr>,
    s1_term: DFF<Addr>,
    s1_head: DFF<Bit>,
    /// Pass p of set s finishes (index s NP + p): the lanes' write
    /// enables, decoded here once and registered.
    s2_post: Vec<DFF<Bit>>,
    /// The last term of a pass lands (stage 2 minus one).
    m2_last: Signal<Local, Bit>,
    s2_head: DFF<Bit>,
    /// The head's outputs are registered after saturation: one stage more.
    s3_head: DFF<Bit>,
    /// The head's events one cycle later, when the lanes (one cycle behind
    /// the controller: [`super::prim::Kept`]) show their results.
    lag_done: DFF<Bit>,
    /// The last step's head is done: the extraction's load, one register
    /// (its clock enables span every lane's result registers).
    lag_load: DFF<Bit>,
    lag_step: DFF<Addr>,
    lag_group: DFF<Bits<32>>,
    upd_run: DFF<Bit>,
    upd_j: DFF<Addr>,
    upd_set: DFF<Bit>,
    upd_zero: DFF<Bit>,
    upd_active: DFF<Bit>,
    zero: Vec<Signal<Local, Bit>>,
    issue: Signal<Local, Bit>,
    layer_a: Signal<Local, Bit>,
    layer_c: Signal<Local, Bit>,
    n_set: Signal<Local, Bit>,
    o_active: Signal<Local, Bit>,
    o_decoder: Signal<Local, Bit>,
    o_step: Signal<Local, Addr>,
    o_group: Signal<Local, Bits<32>>,
    o_ready: Signal<Local, Bit>,
    t_last: Signal<Local, Bit>,
    n_active: Signal<Local, Bit>,
    n_decoder: Signal<Local, Bit>,
    n_step: Signal<Local, Addr>,
    n_head: Signal<Local, Bit>,
    n_head_last: Signal<Local, Bit>,
    start: Signal<Local, Bit>,
    /// The next boundary's decisions, registered every cycle: the set
    /// state they read changes only at a boundary, which comes at least
    /// NP K + DRAIN_CYCLES cycles after the last, so the boundary cycle
    /// itself is registers, `ext_busy` and the input buffers' ready flags
    /// (the combinational form was P = 3's critical path).
    bnd_active: DFF<Bit>,
    bnd_decoder: DFF<Bit>,
    bnd_step: DFF<Addr>,
    bnd_head: DFF<Bit>,
    bnd_head_first: DFF<Bit>,
    bnd_head_last: DFF<Bit>,
    bnd_head_step: DFF<Addr>,
    bnd_head_group: DFF<Bits<32>>,
    /// The set entering its A slot is idle and next in line for a group.
    bnd_vacant: DFF<Bit>,
    /// It finishes its encoder: its input buffer is free.
    bnd_release: DFF<Bit>,
    /// Per unit: passes p with p < a_passes[m] hold z/r rows (p M + m < 2H).
    a_passes: Vec<Constant<Addr>>,
    last_pass: Constant<Addr>,
    /// 0..NP, to decode the finishing pass.
    pass_index: Vec<Constant<Addr>>,
    last_term: Constant<Addr>,
    x_term: Constant<Addr>,
    last_state_term: Constant<Addr>,
    last_step: Constant<Addr>,
    layer_rom_offset: Constant<Addr>,
    layer_bias_offset: Constant<Addr>,
    _lanes: usize,
    _m: usize,
    _h: usize,
    _np: usize,
    _np2: usize,
    pub _shape: Shape,
}

fn shifted(t: &crate::fixed::QuantTensor, extra: u32) -> Vec<i64> {
    t.codes
        .iter()
        .map(|&c| (c as i64) << (t.exponent + extra))
        .collect()
}

impl Gru {
    /// Build from a validated model; `macs` must divide 3H.
    pub fn new(model: &QuantModel, gates: usize, lanes: usize, macs: usize, dsp: Dsp) -> Self {
        let fmt: Format = model.format();
        let h = model.hidden;
        let m = macs;
        let shape = Shape {
            hidden: h,
            gates,
            macs: m,
            lanes,
            passes: 3 * h / m,
            terms: h + 1,
        };
        let (np, k) = (shape.passes, shape.terms);
        let w1 = fmt.bias_shift();
        let enc_u = shifted(&model.encoder_recurrent, 0);
        let dec_u = shifted(&model.decoder_recurrent, 0);
        let enc_k = shifted(&model.encoder_kernel, 0);
        // Biases as code << e_b; the MAC units align them by W - 1.
        let enc_b = shifted(&model.encoder_bias, 0);
        let dec_b = shifted(&model.decoder_bias, 0);
        let head_k = shifted(&model.head_kernel, 0);
        let head_b = shifted(&model.head_bias, w1);
        let weight_rom = (0..m)
            .map(|unit| {
                let mut v = Vec::with_capacity(2 * np * k);
                for layer in 0..2 {
                    for p in 0..np {
                        let j = p * m + unit;
                        for t in 0..k {
                            v.push(match (layer, t < h) {
                                (0, true) => enc_u[t * 3 * h + j],
                                (1, true) => dec_u[t * 3 * h + j],
                                (0, false) => enc_k[j],
                                _ => 0,
                            });
                        }
                    }
                }
                Rom::signed(&v).pipelined().block()
            })
            .collect();
        let bias_rom = (0..m)
            .map(|unit| {
                let mut v = Vec::with_capacity(2 * np);
                for b in [&enc_b, &dec_b] {
                    for p in 0..np {
                        v.push(b[p * m + unit]);
                    }
                }
                Rom::signed(&v).pipelined()
            })
            .collect();
        let head_rom = (0..3)
            .map(|c| {
                Rom::signed(&(0..h).map(|t| head_k[t * 3 + c]).collect::<Vec<_>>()).pipelined()
            })
            .collect();
        let head_bias = [head_b[0], head_b[1], head_b[2]];
        // The widest shifted weight or bias the MAC units and head read
        // through their weight ports (the head bias is a constant).
        let exponent = [
            &model.encoder_recurrent,
            &model.decoder_recurrent,
            &model.encoder_kernel,
            &model.encoder_bias,
            &model.decoder_bias,
            &model.head_kernel,
        ]
        .iter()
        .map(|t| t.exponent)
        .max()
        .unwrap_or(0);
        let addr = |x: usize| Constant::new((x as u64).into());
        Gru {
            clock: Default::default(),
            x_we: Default::default(),
            x_set: Default::default(),
            x_addr: Default::default(),
            x_data: super::many(lanes),
            x_done: Default::default(),
            x_free0: Default::default(),
            x_free1: Default::default(),
            ext_busy: Default::default(),
            ext_load: Default::default(),
            amp1: super::many(lanes),
            amp2: super::many(lanes),
            sum1: super::many(lanes),
            sum2: super::many(lanes),
            dbg_valid: Default::default(),
            dbg_group: Default::default(),
            dbg_step: Default::default(),
            dbg_channel: super::many(3 * lanes),
            groups_started: Default::default(),
            lane: (0..lanes)
                .map(|_| Lane::new(fmt, h, m, gates, head_bias, exponent, dsp))
                .collect(),
            weight_rom,
            bias_rom,
            head_rom,
            slot: Default::default(),
            pass: Default::default(),
            term: Default::default(),
            rom_addr: Default::default(),
            drain: Default::default(),
            d0_valid: Default::default(),
            d0_first: Default::default(),
            d0_pass: Default::default(),
            d0_term: Default::default(),
            d0_head: Default::default(),
            d0_unit_a: super::many(m),
            d0_waddr_a: Default::default(),
            d0_waddr_c: Default::default(),
            d0_baddr_a: Default::default(),
            d0_baddr_c: Default::default(),
            d1_waddr: super::many(m),
            d1_baddr: super::many(m),
            d1_valid: Default::default(),
            d1_first: Default::default(),
            d1_pass: Default::default(),
            d1_term: Default::default(),
            d1_head: Default::default(),
            s1b_valid: Default::default(),
            s1b_first: Default::default(),
            s1b_pass: Default::default(),
            s1b_term: Default::default(),
            s1_is_a: super::many(m),
            m1_valid: Default::default(),
            m1_pass: Default::default(),
            m1_term: Default::default(),
            m2_valid: Default::default(),
            m2_pass: Default::default(),
            m2_term: Default::default(),
            h1_last: Default::default(),
            h2_last: Default::default(),
            a_set: DFF::default(),
            active: super::many(2),
            decoder: super::many(2),
            step: super::many(2),
            group: super::many(2),
            x_ready: super::many(2),
            next_set: Default::default(),
            next_group: Default::default(),
            head_valid: Default::default(),
            head_first: Default::default(),
            head_last: Default::default(),
            head_step: Default::default(),
            head_group: Default::default(),
            s1_valid: Default::default(),
            s1_first: Default::default(),
            s1_pass: Default::default(),
            s1_term: Default::default(),
            s1_head: Default::default(),
            s2_post: super::many(2 * np),
            m2_last: Default::default(),
            s2_head: Default::default(),
            s3_head: Default::default(),
            lag_done: Default::default(),
            lag_load: Default::default(),
            lag_step: Default::default(),
            lag_group: Default::default(),
            upd_run: Default::default(),
            upd_j: Default::default(),
            upd_set: Default::default(),
            upd_zero: Default::default(),
            upd_active: Default::default(),
            zero: super::many(2),
            issue: Default::default(),
            layer_a: Default::default(),
            layer_c: Default::default(),
            n_set: Default::default(),
            o_active: Default::default(),
            o_decoder: Default::default(),
            o_step: Default::default(),
            o_group: Default::default(),
            o_ready: Default::default(),
            t_last: Default::default(),
            n_active: Default::default(),
            n_decoder: Default::default(),
            n_step: Default::default(),
            n_head: Default::default(),
            n_head_last: Default::default(),
            start: Default::default(),
            bnd_active: Default::default(),
            bnd_decoder: Default::default(),
            bnd_step: Default::default(),
            bnd_head: Default::default(),
            bnd_head_first: Default::default(),
            bnd_head_last: Default::default(),
            bnd_head_step: Default::default(),
            bnd_head_group: Default::default(),
            bnd_vacant: Default::default(),
            bnd_release: Default::default(),
            a_passes: (0..m)
                .map(|unit| addr((2 * h).saturating_sub(unit).div_ceil(m)))
                .collect(),
            last_pass: addr(np - 1),
            pass_index: (0..np).map(addr).collect(),
            last_term: addr(k - 1),
            x_term: addr(h),
            last_state_term: addr(h - 1),
            last_step: addr(gates - 1),
            layer_rom_offset: addr(np * k),
            layer_bias_offset: addr(np),
            _lanes: lanes,
            _m: m,
            _h: h,
            _np: np,
            _np2: 2 * np,
            _shape: shape,
        }
    }
}

impl Logic for Gru {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, slot, pass, term, rom_addr, drain, d0_valid, d0_first, d0_pass, d0_term,
            d0_head, d0_waddr_a, d0_waddr_c, d0_baddr_a, d0_baddr_c, d1_valid, d1_first, d1_pass,
            d1_term, d1_head, s1b_valid, s1b_first, s1b_pass, s1b_term, m1_valid, m1_pass, m1_term,
            m2_valid, m2_pass, m2_term, h1_last, h2_last, a_set, next_set, next_group, head_valid,
            head_first, head_last, head_step, head_group, s1_valid, s1_first, s1_pass, s1_term,
            s1_head, s2_head, s3_head, lag_done, lag_load, lag_step, lag_group, upd_run, upd_j,
            upd_set, upd_zero, upd_active
        );
        dff_setup!(
            self,
            clock,
            bnd_active,
            bnd_decoder,
            bnd_step,
            bnd_head,
            bnd_head_first,
            bnd_head_last,
            bnd_head_step,
            bnd_head_group,
            bnd_vacant,
            bnd_release
        );
        for s in 0..2 {
            self.active[s].clock.next = self.clock.val();
            self.decoder[s].clock.next = self.clock.val();
            self.step[s].clock.next = self.clock.val();
            self.group[s].clock.next = self.clock.val();
            self.x_ready[s].clock.next = self.clock.val();
            self.active[s].d.next = self.active[s].q.val();
            self.decoder[s].d.next = self.decoder[s].q.val();
            self.step[s].d.next = self.step[s].q.val();
            self.group[s].d.next = self.group[s].q.val();
            self.x_ready[s].d.next = self.x_ready[s].q.val();
            self.zero[s].next =
                self.active[s].q.val() && !self.decoder[s].q.val() && !self.step[s].q.val().any();
            if self.x_done.val() && (self.x_set.val() == (s == 1)) {
                self.x_ready[s].d.next = true;
            }
        }
        self.x_free0.next = !self.x_ready[0].q.val();
        self.x_free1.next = !self.x_ready[1].q.val();
        self.groups_started.next = self.next_group.q.val();
        self.issue.next = self.slot.q.val() == SlotState::Issue;
        // Weight, bias and head ROMs (stage 0 address, stage 1 data).
        // The set in its A slot reads decoder words when it is in the
        // decoder; so does the C set.
        self.layer_a.next = (self.a_set.q.val() && self.decoder[1].q.val())
            || (!self.a_set.q.val() && self.decoder[0].q.val());
        self.layer_c.next = (self.a_set.q.val() && self.decoder[0].q.val())
            || (!self.a_set.q.val() && self.decoder[1].q.val());
        self.d0_waddr_a.d.next = self.rom_addr.q.val();
        self.d0_baddr_a.d.next = self.pass.q.val();
        if self.layer_a.val() {
            self.d0_waddr_a.d.next = self.rom_addr.q.val() + self.layer_rom_offset.val();
            self.d0_baddr_a.d.next = self.pass.q.val() + self.layer_bias_offset.val();
        }
        self.d0_waddr_c.d.next = self.rom_addr.q.val();
        self.d0_baddr_c.d.next = self.pass.q.val();
        if self.layer_c.val() {
            self.d0_waddr_c.d.next = self.rom_addr.q.val() + self.layer_rom_offset.val();
            self.d0_baddr_c.d.next = self.pass.q.val() + self.layer_bias_offset.val();
        }
        for m in 0..self._m {
            // The address is computed at stage 0 and presented at stage 0c
            // to the ROMs with an output register, so the data meets stage 1b.
            self.d0_unit_a[m].clock.next = self.clock.val();
            self.d0_unit_a[m].d.next = self.pass.q.val() < self.a_passes[m].val();
            self.d1_waddr[m].clock.next = self.clock.val();
            self.d1_baddr[m].clock.next = self.clock.val();
            self.d1_waddr[m].d.next = self.d0_waddr_c.q.val();
            self.d1_baddr[m].d.next = self.d0_baddr_c.q.val();
            if self.d0_unit_a[m].q.val() {
                self.d1_waddr[m].d.next = self.d0_waddr_a.q.val();
                self.d1_baddr[m].d.next = self.d0_baddr_a.q.val();
            }
            self.weight_rom[m].clock.next = self.clock.val();
            self.bias_rom[m].clock.next = self.clock.val();
            self.weight_rom[m].address.next = self.d1_waddr[m].q.val();
            self.bias_rom[m].address.next = self.d1_baddr[m].q.val();
        }
        for c in 0..3 {
            self.head_rom[c].clock.next = self.clock.val();
            self.head_rom[c].address.next = self.d0_term.q.val();
        }
        // Pipeline registers: stage 0 -> 0b -> 0c -> 1(a) -> 1b.
        self.d0_valid.d.next = self.issue.val();
        self.d0_first.d.next = !self.term.q.val().any();
        self.d0_pass.d.next = self.pass.q.val();
        self.d0_term.d.next = self.term.q.val();
        self.d0_head.d.next =
            self.issue.val() && !self.pass.q.val().any() && (self.term.q.val() < self.x_term.val());
        self.d1_valid.d.next = self.d0_valid.q.val();
        self.d1_first.d.next = self.d0_first.q.val();
        self.d1_pass.d.next = self.d0_pass.q.val();
        self.d1_term.d.next = self.d0_term.q.val();
        self.d1_head.d.next = self.d0_head.q.val();
        self.s1_valid.d.next = self.d1_valid.q.val();
        self.s1_first.d.next = self.d1_first.q.val();
        self.s1_pass.d.next = self.d1_pass.q.val();
        self.s1_term.d.next = self.d1_term.q.val();
        self.s1_head.d.next = self.d1_head.q.val();
        self.s1b_valid.d.next = self.s1_valid.q.val();
        self.s1b_first.d.next = self.s1_first.q.val();
        self.s1b_pass.d.next = self.s1_pass.q.val();
        self.s1b_term.d.next = self.s1_term.q.val();
        for m in 0..self._m {
            self.s1_is_a[m].clock.next = self.clock.val();
            self.s1_is_a[m].d.next = self.s1_pass.q.val() < self.a_passes[m].val();
        }
        self.m1_valid.d.next = self.s1b_valid.q.val();
        self.m1_pass.d.next = self.s1b_pass.q.val();
        self.m1_term.d.next = self.s1b_term.q.val();
        self.m2_valid.d.next = self.m1_valid.q.val();
        self.m2_pass.d.next = self.m1_pass.q.val();
        self.m2_term.d.next = self.m1_term.q.val();
        self.m2_last.next = self.m2_valid.q.val() && (self.m2_term.q.val() == self.last_term.val());
        for np in self._np..(self._np + 1) {
            for p in 0..self._np {
                self.s2_post[p].clock.next = self.clock.val();
                self.s2_post[np + p].clock.next = self.clock.val();
                self.s2_post[p].d.next = self.m2_last.val()
                    && (self.m2_pass.q.val() == self.pass_index[p].val())
                    && !self.a_set.q.val();
                self.s2_post[np + p].d.next = self.m2_last.val()
                    && (self.m2_pass.q.val() == self.pass_index[p].val())
                    && self.a_set.q.val();
            }
        }
        self.h1_last.d.next =
            self.s1_head.q.val() && (self.s1_term.q.val() == self.last_state_term.val());
        self.h2_last.d.next = self.h1_last.q.val();
        self.s2_head.d.next = self.h2_last.q.val();
        self.s3_head.d.next = self.s2_head.q.val();
        // Lanes.
        for l in 0..self._lanes {
            self.lane[l].clock.next = self.clock.val();
            self.lane[l].x_we.next = self.x_we.val();
            self.lane[l].x_set.next = self.x_set.val();
            self.lane[l].x_waddr.next = self.x_addr.val();
            self.lane[l].x_wdata.next = self.x_data[l].val();
            self.lane[l].x_raddr0.next = self.step[0].q.val();
            self.lane[l].x_raddr1.next = self.step[1].q.val();
            self.lane[l].k.next = self.term.q.val();
            self.lane[l].k_is_x.next = self.term.q.val() == self.x_term.val();
            self.lane[l].c_rotate.next =
                self.issue.val() && (self.term.q.val() != self.x_term.val());
            self.lane[l].ka.next = self.d1_term.q.val();
            self.lane[l].ka_is_x.next = self.d1_term.q.val() == self.x_term.val();
            self.lane[l].a_set.next = self.a_set.q.val();
            if self.a_set.q.val() {
                self.lane[l].a_zero.next = self.zero[1].val();
                self.lane[l].c_zero.next = self.zero[0].val();
            } else {
                self.lane[l].a_zero.next = self.zero[0].val();
                self.lane[l].c_zero.next = self.zero[1].val();
            }
            self.lane[l].mac_en.next = self.s1b_valid.q.val();
            self.lane[l].mac_first.next = self.s1b_first.q.val();
            for m in 0..self._m {
                self.lane[l].unit_is_a[m].next = self.s1_is_a[m].q.val();
                self.lane[l].weight[m].next = self.weight_rom[m].data.val();
                self.lane[l].bias[m].next = self.bias_rom[m].data.val();
            }
            self.lane[l].head_en.next = self.s1_head.q.val();
            self.lane[l].head_first.next = self.s1_first.q.val();
            for c in 0..3 {
                self.lane[l].head_weight[c].next = self.head_rom[c].data.val();
            }
            for i in 0..self._np2 {
                self.lane[l].post[i].next = self.s2_post[i].q.val();
            }
            self.lane[l].head_done.next = self.s3_head.q.val() && self.head_valid.q.val();
            self.lane[l].head_step_first.next = self.head_first.q.val();
            self.lane[l].head_step_last.next = self.head_last.q.val();
            self.lane[l].head_set.next = self.a_set.q.val();
            self.lane[l].upd_en.next = self.upd_run.q.val() && self.upd_active.q.val();
            self.lane[l].upd_j.next = self.upd_j.q.val();
            self.lane[l].upd_set.next = self.upd_set.q.val();
            self.lane[l].upd_zero.next = self.upd_zero.q.val();
            self.amp1[l].next = self.lane[l].amp1.val();
            self.amp2[l].next = self.lane[l].amp2.val();
            self.sum1[l].next = self.lane[l].sum1.val();
            self.sum2[l].next = self.lane[l].sum2.val();
        }
        for mm in 3..4 {
            for l in 0..self._lanes {
                for c in 0..3 {
                    self.dbg_channel[l * mm + c].next = self.lane[l].channel[c].val();
                }
            }
        }
        self.lag_done.d.next = self.s3_head.q.val() && self.head_valid.q.val();
        self.lag_load.d.next =
            self.s3_head.q.val() && self.head_valid.q.val() && self.head_last.q.val();
        self.lag_step.d.next = self.head_step.q.val();
        self.lag_group.d.next = self.head_group.q.val();
        self.dbg_valid.next = self.lag_done.q.val();
        self.dbg_group.next = self.lag_group.q.val();
        self.dbg_step.next = self.lag_step.q.val();
        self.ext_load.next = self.lag_load.q.val();
        // State-update stream: H cycles from the cycle after the drain.
        if self.upd_run.q.val() {
            self.upd_j.d.next = self.upd_j.q.val() + 1;
            if self.upd_j.q.val() == self.last_state_term.val() {
                self.upd_run.d.next = false;
            }
        }
        // The set entering its A slot (it was in its C slot).
        self.n_set.next = !self.a_set.q.val();
        self.o_active.next = self.active[0].q.val();
        self.o_decoder.next = self.decoder[0].q.val();
        self.o_step.next = self.step[0].q.val();
        self.o_group.next = self.group[0].q.val();
        self.o_ready.next = self.x_ready[0].q.val();
        if self.n_set.val() {
            self.o_active.next = self.active[1].q.val();
            self.o_decoder.next = self.decoder[1].q.val();
            self.o_step.next = self.step[1].q.val();
            self.o_group.next = self.group[1].q.val();
            self.o_ready.next = self.x_ready[1].q.val();
        }
        self.t_last.next = self.o_step.val() == self.last_step.val();
        self.n_head.next = self.o_active.val() && self.o_decoder.val();
        self.n_head_last.next = self.n_head.val() && self.t_last.val();
        self.n_active.next = self.o_active.val();
        self.n_decoder.next = self.o_decoder.val();
        self.n_step.next = self.o_step.val() + 1;
        if self.t_last.val() {
            self.n_step.next = 0.into();
            if self.o_decoder.val() {
                self.n_active.next = false;
            } else {
                self.n_decoder.next = true;
            }
        }
        if !self.o_active.val() {
            self.n_step.next = self.o_step.val();
        }
        self.bnd_active.d.next = self.n_active.val();
        self.bnd_decoder.d.next = self.n_decoder.val();
        self.bnd_step.d.next = self.n_step.val();
        self.bnd_head.d.next = self.n_head.val();
        self.bnd_head_first.d.next = self.n_head.val() && !self.o_step.val().any();
        self.bnd_head_last.d.next = self.n_head_last.val();
        self.bnd_head_step.d.next = self.o_step.val();
        self.bnd_head_group.d.next = self.o_group.val();
        self.bnd_vacant.d.next =
            !self.n_active.val() && (self.next_set.q.val() == self.n_set.val());
        self.bnd_release.d.next = self.o_active.val() && self.t_last.val() && !self.o_decoder.val();
        // The ready flags are read live: one set's buffer may fill in the
        // cycle before the boundary.
        self.start.next = self.bnd_vacant.q.val() && self.o_ready.val();
        match self.slot.q.val() {
            SlotState::Boundary => {
                if !(self.bnd_head_last.q.val() && self.ext_busy.val()) {
                    self.slot.d.next = SlotState::Issue;
                    self.a_set.d.next = self.n_set.val();
                    self.pass.d.next = 0.into();
                    self.term.d.next = 0.into();
                    self.rom_addr.d.next = 0.into();
                    self.head_valid.d.next = self.bnd_head.q.val();
                    self.head_first.d.next = self.bnd_head_first.q.val();
                    self.head_last.d.next = self.bnd_head_last.q.val();
                    self.head_step.d.next = self.bnd_head_step.q.val();
                    self.head_group.d.next = self.bnd_head_group.q.val();
                    if self.start.val() {
                        self.next_set.d.next = !self.next_set.q.val();
                        self.next_group.d.next = self.next_group.q.val() + 1;
                    }
                    for s in 0..2 {
                        if self.n_set.val() == (s == 1) {
                            self.active[s].d.next = self.bnd_active.q.val();
                            self.decoder[s].d.next = self.bnd_decoder.q.val();
                            self.step[s].d.next = self.bnd_step.q.val();
                            if self.bnd_release.q.val() {
                                self.x_ready[s].d.next = false;
                            }
                            if self.start.val() {
                                self.active[s].d.next = true;
                                self.decoder[s].d.next = false;
                                self.step[s].d.next = 0.into();
                                self.group[s].d.next = self.next_group.q.val();
                            }
                        }
                    }
                }
            }
            SlotState::Issue => {
                self.term.d.next = self.term.q.val() + 1;
                self.rom_addr.d.next = self.rom_addr.q.val() + 1;
                if self.term.q.val() == self.last_term.val() {
                    self.term.d.next = 0.into();
                    self.pass.d.next = self.pass.q.val() + 1;
                    if self.pass.q.val() == self.last_pass.val() {
                        self.pass.d.next = 0.into();
                        self.slot.d.next = SlotState::Drain;
                        self.drain.d.next = 0.into();
                    }
                }
            }
            SlotState::Drain => {
                self.drain.d.next = self.drain.q.val() + 1;
                // DRAIN_CYCLES - 1 (asserted below the constants).
                if self.drain.q.val() == 6 {
                    self.slot.d.next = SlotState::Boundary;
                    self.upd_run.d.next = true;
                    self.upd_j.d.next = 0.into();
                    self.upd_set.d.next = !self.a_set.q.val();
                    self.upd_active.d.next = (self.a_set.q.val() && self.active[0].q.val())
                        || (!self.a_set.q.val() && self.active[1].q.val());
                    self.upd_zero.d.next = (self.a_set.q.val() && self.zero[0].val())
                        || (!self.a_set.q.val() && self.zero[1].val());
                }
            }
            _ => {
                self.slot.d.next = SlotState::Boundary;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtl::prim::sx;

    /// Unit m of pass p holds gate row j = p M + m: its ROM word for term
    /// k < H is U[k][j] << e_U, for k = H the input kernel K[j] << e_K (0 in
    /// the decoder), after the encoder's NP K words the decoder's.
    #[test]
    fn weight_roms_fold_the_rows_onto_the_units() {
        let model = crate::rtl::testbench::random_model(8, 4, 2);
        let (h, m) = (4, 6);
        let gru = Gru::new(&model, 11, 1, m, Dsp::Inferred);
        assert_eq!(gru._shape.passes, 2);
        assert_eq!(gru._shape.slot_cycles(), 2 * 5 + 8);
        let (eu, du, ek) = (
            model.encoder_recurrent.exponent,
            model.decoder_recurrent.exponent,
            model.encoder_kernel.exponent,
        );
        for unit in 0..m {
            let rom = &gru.weight_rom[unit]._rom;
            assert_eq!(rom.len(), 2 * 2 * (h + 1));
            for p in 0..2 {
                let j = p * m + unit;
                for k in 0..=h {
                    let enc = sx(rom[p * (h + 1) + k]);
                    let dec = sx(rom[2 * (h + 1) + p * (h + 1) + k]);
                    if k < h {
                        assert_eq!(
                            enc,
                            (model.encoder_recurrent.codes[k * 3 * h + j] as i64) << eu
                        );
                        assert_eq!(
                            dec,
                            (model.decoder_recurrent.codes[k * 3 * h + j] as i64) << du
                        );
                    } else {
                        assert_eq!(enc, (model.encoder_kernel.codes[j] as i64) << ek);
                        assert_eq!(dec, 0);
                    }
                }
            }
            // z/r rows (j < 2H = 8) in passes below a_passes.
            let a = gru.a_passes[unit].val().index();
            assert_eq!(a, (0..2).filter(|p| p * m + unit < 2 * h).count());
        }
    }
}
