//! One pixel lane of the GRU engine: the per-pixel state of two
//! interleaved pixel sets (h in a two-read-port RAM, z, r per set, the
//! shared candidate registers), the input buffers, M MAC units folding the
//! 3H x (H + 1) matrix-vector work, the reset-product and state-update
//! units streaming one unit per cycle, and the head. Everything the lanes
//! share (weights, schedule) arrives on broadcast inputs from the GRU
//! controller (`gru.rs`), each registered on entry in the lane's own
//! [`Kept`] copy: the lane runs one cycle behind the controller, and every
//! decode of the schedule (which register a finished pass writes, which
//! register file rotates) is the lane's own, next to the registers it
//! drives, instead of one decode yosys shares across the die.
//!
//! Pipeline: stage 0 (issue of term k of pass p): the operands of the set
//! in its C slot are read and registered (in the reset multiplier's
//! operand registers); stage 0b: their reset product r_k h_k (a DSP),
//! registered; stage 0c: the product registered again in the fabric
//! (`c_prod`), and the read of the z/r operand of the set in its A slot at
//! the same term (address `ka`, two cycles behind `k`) into `op_a`. The A
//! set's read comes last so a slot can start two cycles before the state
//! update narrows the values it reads (three before they are registered,
//! four before they are in the RAM). Stage 1a:
//! `op_a` copied once per eight MAC units, and the C operand narrowed
//! from `c_prod` once per eight MAC units into its copies (the weight ROMs
//! are read here); stage 1b: the
//! MAC inputs (operand select per unit); the MACs land MAC_LATENCY cycles
//! later. Stage 2: a finished pass's accumulators go through the hard
//! sigmoid / clipped identity into z, r or c. The state update streams
//! through five stages (reads into the multiplier's operand registers,
//! product, the product in the fabric, narrowing of the product plus S c
//! into a register, write); the A set's read of a unit in the last two
//! takes the narrowed value from its register (a unit being narrowed a
//! cycle later, in front of the operand copies), so the update costs the
//! schedule three stages. A DSP's output register and the narrowing after it (a
//! die crossing and two carry chains) are never one path: that was
//! P = 2's critical path. Every
//! register-to-register path holds at most one multiplier or one carry
//! chain of about 2W bits (docs/hardware.md: post-route Fmax). The two
//! streamed multipliers are [`Product`]s, their product registers inside
//! the DSP where the [`Dsp`] form allows.

use super::head::Head;
use super::prim::{Dsp, Kept, KeptCode, KeptWeight, MacUnit, Mem, Product, Requant, RequantSum};
use super::{Acc, Addr, Code, Widths, Wt};
use crate::fixed::Format;
use rust_hdl::prelude::*;

#[derive(LogicBlock)]
pub struct Lane {
    pub clock: Signal<In, Clock>,
    // Input buffer write port (preprocessor) and read addresses (step t of each set).
    pub x_we: Signal<In, Bit>,
    pub x_set: Signal<In, Bit>,
    pub x_waddr: Signal<In, Addr>,
    pub x_wdata: Signal<In, Code>,
    pub x_raddr0: Signal<In, Addr>,
    pub x_raddr1: Signal<In, Addr>,
    // Stage 0.
    pub k: Signal<In, Addr>,
    pub k_is_x: Signal<In, Bit>,
    /// Stage 0: a state term is issued (the C set's r turns one unit).
    pub c_rotate: Signal<In, Bit>,
    /// Stage 0c: the term of the A set's read (k two cycles later).
    pub ka: Signal<In, Addr>,
    pub ka_is_x: Signal<In, Bit>,
    pub a_set: Signal<In, Bit>,
    pub a_zero: Signal<In, Bit>,
    pub c_zero: Signal<In, Bit>,
    // Stage 1.
    pub mac_en: Signal<In, Bit>,
    pub mac_first: Signal<In, Bit>,
    pub unit_is_a: Vec<Signal<In, Bit>>,
    pub weight: Vec<Signal<In, Wt>>,
    pub bias: Vec<Signal<In, Wt>>,
    pub head_en: Signal<In, Bit>,
    pub head_first: Signal<In, Bit>,
    pub head_weight: Vec<Signal<In, Wt>>,
    // Stage 2.
    /// Pass p of set s finishes: index s NP + p (one-hot, decoded by the
    /// controller, so each write enable below is one kept register away).
    pub post: Vec<Signal<In, Bit>>,
    pub head_done: Signal<In, Bit>,
    pub head_step_first: Signal<In, Bit>,
    pub head_step_last: Signal<In, Bit>,
    pub head_set: Signal<In, Bit>,
    // State-update stream.
    pub upd_en: Signal<In, Bit>,
    pub upd_j: Signal<In, Addr>,
    pub upd_set: Signal<In, Bit>,
    pub upd_zero: Signal<In, Bit>,
    // Outputs: head channels and extraction inputs.
    pub channel: Vec<Signal<Out, Acc>>,
    pub amp1: Signal<Out, Acc>,
    pub amp2: Signal<Out, Acc>,
    pub sum1: Signal<Out, Acc>,
    pub sum2: Signal<Out, Acc>,
    /// The lane's own copies of its inputs, one cycle later (the lane runs
    /// one cycle behind the controller; x_wdata, the only per-lane input,
    /// is delayed with the rest): see [`Kept`].
    x_we_r: Kept<Bit>,
    x_set_r: Kept<Bit>,
    x_waddr_r: Kept<Addr>,
    x_wdata_r: Kept<Code>,
    x_raddr0_r: Kept<Addr>,
    x_raddr1_r: Kept<Addr>,
    /// Each set's state RAM read address (port 0): `ka` for the set in
    /// its A slot, `k` for the other, selected on entry so the set select
    /// is not in front of the LUT-RAM read (P = 2's critical path under
    /// the floorplan was `a_set_r`, the address select, the read, the
    /// forwarding and the operand select in one).
    raddr_r: Vec<Kept<Addr>>,
    k_is_x_r: Kept<Bit>,
    c_rotate_r: Kept<Bit>,
    ka_is_x_r: Kept<Bit>,
    a_set_r: Kept<Bit>,
    a_zero_r: Kept<Bit>,
    c_zero_r: Kept<Bit>,
    /// The MAC controls, one copy per [`MACS_PER_COPY`] units like the
    /// operands.
    mac_en_r: Vec<Kept<Bit>>,
    mac_first_r: Vec<Kept<Bit>>,
    head_en_r: Kept<Bit>,
    head_first_r: Kept<Bit>,
    /// `post`, one copy per [`MACS_PER_COPY`] units (group g's at
    /// g 2NP..): a row's write enable starts beside the MAC it takes.
    post_r: Vec<Kept<Bit>>,
    head_done_r: Kept<Bit>,
    head_step_first_r: Kept<Bit>,
    head_step_last_r: Kept<Bit>,
    head_set_r: Kept<Bit>,
    upd_en_r: Kept<Bit>,
    upd_j_r: Kept<Addr>,
    upd_set_r: Kept<Bit>,
    upd_zero_r: Kept<Bit>,
    unit_is_a_r: Vec<Kept<Bit>>,
    weight_r: Vec<KeptWeight>,
    bias_r: Vec<KeptWeight>,
    head_weight_r: Vec<KeptWeight>,
    // Per-set state.
    state: Vec<Mem<18>>,
    input: Vec<Mem<18>>,
    z0: Vec<DFF<Code>>,
    z1: Vec<DFF<Code>>,
    r0: Vec<DFF<Code>>,
    r1: Vec<DFF<Code>>,
    cand: Vec<DFF<Code>>,
    /// The A set reads the unit the update is narrowing (`forward`) or
    /// writing back (`forward_wb`) this cycle, each decided a cycle early
    /// from the update's earlier stage and the broadcast `ka`, `a_set`.
    /// A narrowed value reaches the A operand only from its register: a
    /// `forward` read takes `wb_h` a cycle later, in front of the operand
    /// copies and the head (`late_a` for the A operand, masked like it by
    /// the x term and a zeroed set; `late_head`).
    forward: DFF<Bit>,
    forward_wb: DFF<Bit>,
    late_a: DFF<Bit>,
    late_head: DFF<Bit>,
    op_a: DFF<Code>,
    op_head: DFF<Code>,
    /// Stage 1a: the A and C operands, one copy per [`MACS_PER_COPY`] MAC
    /// units, so no operand net spans all M DSPs (at P = 3, M = 48 the
    /// one C operand net to 48 DSP columns was the critical path: 20.5 ns
    /// of routing, docs/hardware.md). Each C copy narrows the reset
    /// product itself (`reset_q`), beside its MACs.
    op_a_copy: Vec<KeptCode>,
    op_c_copy: Vec<KeptCode>,
    /// The input buffers' reads of the A / C set, registered: x is read
    /// at the last term of a pass (H + 2 or more cycles after its step
    /// address and set change at a slot boundary, and after the buffer was
    /// filled), so a one-cycle-old read is the same value, and the deep
    /// LUT-RAM read tree is a path of its own (M = 48's critical path was
    /// that tree, the set select and the operand select in one).
    x_a_q: DFF<Code>,
    x_c_q: DFF<Code>,
    // Operand pipeline (stages 0b, 0c between the reads and the MACs;
    // the reset product's operand and product registers are `reset_mul`'s).
    p_xc: DFF<Code>,
    p_isx: DFF<Bit>,
    p_czero: DFF<Bit>,
    q_xc: DFF<Code>,
    q_isx: DFF<Bit>,
    q_czero: DFF<Bit>,
    /// Stage 0c: the reset product in the fabric, and what selects the C
    /// operand (x, 0 or the narrowed product).
    c_prod: DFF<Acc>,
    c_xc: DFF<Code>,
    c_isx: DFF<Bit>,
    c_czero: DFF<Bit>,
    // State-update pipeline (u0 reads, u1 multiply, u2 the product into
    // the fabric, u3 narrow, u4 write): z_j and h_j - c_j (W + 1 bits: the
    // code width) go into `update_mul`'s operand registers, c_j beside them
    // into `u_c`, `v_c`, `w_c`.
    u_c: DFF<Code>,
    u_j: DFF<Addr>,
    u_set: DFF<Bit>,
    u_en: DFF<Bit>,
    v_c: DFF<Code>,
    v_j: DFF<Addr>,
    v_set: DFF<Bit>,
    v_en: DFF<Bit>,
    /// u2: the update product in the fabric, beside its narrowing and the
    /// state RAM it writes.
    w_prod: DFF<Acc>,
    w_c: DFF<Code>,
    w_j: DFF<Addr>,
    w_set: DFF<Bit>,
    w_en: DFF<Bit>,
    /// u4: the narrowed update registered and written back (the narrowing's
    /// two carry chains and the RAM's write port, or the A operand's
    /// selects, were one path: P = 2's critical path after the A read's
    /// address select went).
    wb_h: DFF<Code>,
    wb_j: DFF<Addr>,
    wb_set: DFF<Bit>,
    wb_en: DFF<Bit>,
    mac: Vec<MacUnit>,
    reset_mul: Product,
    reset_q: Vec<Requant<18>>,
    update_mul: Product,
    update_q: RequantSum<18>,
    head: Head,
    h_a: Signal<Local, Code>,
    h_c: Signal<Local, Code>,
    x_a: Signal<Local, Code>,
    x_c: Signal<Local, Code>,
    r_k: Signal<Local, Code>,
    z_j: Signal<Local, Code>,
    c_j: Signal<Local, Code>,
    h_j: Signal<Local, Code>,
    head_x: Signal<Local, Code>,
    _h: usize,
    _m: usize,
    _copies: usize,
    _per_copy: usize,
    /// Passes per slot (3H / M) and twice that.
    _np: usize,
    _np2: usize,
}

/// MAC units fed by one copy of the lane's operand registers.
pub const MACS_PER_COPY: usize = 8;

impl Lane {
    /// A lane for hidden size `h`, `m` MAC units, `gates` input buffer
    /// depth, weights of at most `exponent` ([`Widths::weight`]).
    pub fn new(
        fmt: Format,
        h: usize,
        m: usize,
        gates: usize,
        head_bias: [i64; 3],
        exponent: u32,
        dsp: Dsp,
    ) -> Self {
        let widths = Widths::new(fmt, h, exponent);
        Lane {
            clock: Default::default(),
            x_we: Default::default(),
            x_set: Default::default(),
            x_waddr: Default::default(),
            x_wdata: Default::default(),
            x_raddr0: Default::default(),
            x_raddr1: Default::default(),
            k: Default::default(),
            k_is_x: Default::default(),
            c_rotate: Default::default(),
            ka: Default::default(),
            ka_is_x: Default::default(),
            a_set: Default::default(),
            a_zero: Default::default(),
            c_zero: Default::default(),
            mac_en: Default::default(),
            mac_first: Default::default(),
            unit_is_a: super::many(m),
            weight: super::many(m),
            bias: super::many(m),
            head_en: Default::default(),
            head_first: Default::default(),
            head_weight: super::many(3),
            post: super::many(2 * (3 * h / m)),
            head_done: Default::default(),
            head_step_first: Default::default(),
            head_step_last: Default::default(),
            head_set: Default::default(),
            upd_en: Default::default(),
            upd_j: Default::default(),
            upd_set: Default::default(),
            upd_zero: Default::default(),
            channel: super::many(3),
            amp1: Default::default(),
            amp2: Default::default(),
            sum1: Default::default(),
            sum2: Default::default(),
            x_we_r: Default::default(),
            x_set_r: Default::default(),
            x_waddr_r: Default::default(),
            x_wdata_r: Default::default(),
            x_raddr0_r: Default::default(),
            x_raddr1_r: Default::default(),
            raddr_r: super::many(2),
            k_is_x_r: Default::default(),
            c_rotate_r: Default::default(),
            ka_is_x_r: Default::default(),
            a_set_r: Default::default(),
            a_zero_r: Default::default(),
            c_zero_r: Default::default(),
            mac_en_r: super::many(m.div_ceil(MACS_PER_COPY)),
            mac_first_r: super::many(m.div_ceil(MACS_PER_COPY)),
            head_en_r: Default::default(),
            head_first_r: Default::default(),
            post_r: super::many(m.div_ceil(MACS_PER_COPY) * 2 * (3 * h / m)),
            head_done_r: Default::default(),
            head_step_first_r: Default::default(),
            head_step_last_r: Default::default(),
            head_set_r: Default::default(),
            upd_en_r: Default::default(),
            upd_j_r: Default::default(),
            upd_set_r: Default::default(),
            upd_zero_r: Default::default(),
            unit_is_a_r: super::many(m),
            weight_r: (0..m).map(|_| KeptWeight::new(widths.weight)).collect(),
            bias_r: (0..m).map(|_| KeptWeight::new(widths.weight)).collect(),
            head_weight_r: (0..3).map(|_| KeptWeight::new(widths.weight)).collect(),
            // Reads at address h (the x term) are never used: a wrapping
            // RAM has no bounds compare (a 16-bit carry chain) in front of
            // the read.
            state: (0..2)
                .map(|_| Mem::wrapping(h.next_power_of_two().trailing_zeros().max(1)))
                .collect(),
            input: (0..2).map(|_| Mem::new(gates)).collect(),
            z0: super::many(h),
            z1: super::many(h),
            r0: super::many(h),
            r1: super::many(h),
            cand: super::many(h),
            forward: Default::default(),
            forward_wb: Default::default(),
            late_a: Default::default(),
            late_head: Default::default(),
            op_a: Default::default(),
            op_head: Default::default(),
            op_a_copy: (0..m.div_ceil(MACS_PER_COPY))
                .map(|_| KeptCode::new(widths.code))
                .collect(),
            op_c_copy: (0..m.div_ceil(MACS_PER_COPY))
                .map(|_| KeptCode::new(widths.code))
                .collect(),
            x_a_q: Default::default(),
            x_c_q: Default::default(),
            p_xc: Default::default(),
            p_isx: Default::default(),
            p_czero: Default::default(),
            q_xc: Default::default(),
            q_isx: Default::default(),
            q_czero: Default::default(),
            c_prod: Default::default(),
            c_xc: Default::default(),
            c_isx: Default::default(),
            c_czero: Default::default(),
            u_c: Default::default(),
            u_j: Default::default(),
            u_set: Default::default(),
            u_en: Default::default(),
            v_c: Default::default(),
            v_j: Default::default(),
            v_set: Default::default(),
            v_en: Default::default(),
            w_prod: Default::default(),
            w_c: Default::default(),
            w_j: Default::default(),
            w_set: Default::default(),
            w_en: Default::default(),
            wb_h: Default::default(),
            wb_j: Default::default(),
            wb_set: Default::default(),
            wb_en: Default::default(),
            mac: (0..m)
                .map(|_| {
                    MacUnit::new(
                        widths,
                        dsp,
                        fmt.bias_shift(),
                        fmt.gate_narrow(),
                        fmt.candidate_narrow(),
                    )
                })
                .collect(),
            reset_mul: Product::new(widths, dsp),
            reset_q: (0..m.div_ceil(MACS_PER_COPY))
                .map(|_| Requant::new(widths.product, fmt.state_narrow()))
                .collect(),
            update_mul: Product::new(widths, dsp),
            update_q: RequantSum::new(widths.product, widths.code, fmt.state_narrow()),
            head: Head::new(widths, dsp, head_bias, fmt.head_narrow()),
            h_a: Default::default(),
            h_c: Default::default(),
            x_a: Default::default(),
            x_c: Default::default(),
            r_k: Default::default(),
            z_j: Default::default(),
            c_j: Default::default(),
            h_j: Default::default(),
            head_x: Default::default(),
            _h: h,
            _m: m,
            _copies: m.div_ceil(MACS_PER_COPY),
            _per_copy: MACS_PER_COPY,
            _np: 3 * h / m,
            _np2: 2 * (3 * h / m),
        }
    }
}

impl Logic for Lane {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, x_a_q, x_c_q, forward, forward_wb, late_a, late_head, op_a, op_head, p_xc,
            p_isx, p_czero, q_xc, q_isx, q_czero, c_prod, c_xc, c_isx, c_czero, u_c, u_j, u_set,
            u_en, v_c, v_j, v_set, v_en, w_prod, w_c, w_j, w_set, w_en, wb_h, wb_j, wb_set, wb_en
        );
        // The broadcast inputs into the lane's own registers.
        self.x_we_r.clock.next = self.clock.val();
        self.x_we_r.d.next = self.x_we.val();
        self.x_set_r.clock.next = self.clock.val();
        self.x_set_r.d.next = self.x_set.val();
        self.x_waddr_r.clock.next = self.clock.val();
        self.x_waddr_r.d.next = self.x_waddr.val();
        self.x_wdata_r.clock.next = self.clock.val();
        self.x_wdata_r.d.next = self.x_wdata.val();
        self.x_raddr0_r.clock.next = self.clock.val();
        self.x_raddr0_r.d.next = self.x_raddr0.val();
        self.x_raddr1_r.clock.next = self.clock.val();
        self.x_raddr1_r.d.next = self.x_raddr1.val();
        for s in 0..2 {
            self.raddr_r[s].clock.next = self.clock.val();
            self.raddr_r[s].d.next = self.k.val();
            if self.a_set.val() == (s == 1) {
                self.raddr_r[s].d.next = self.ka.val();
            }
        }
        self.k_is_x_r.clock.next = self.clock.val();
        self.k_is_x_r.d.next = self.k_is_x.val();
        self.c_rotate_r.clock.next = self.clock.val();
        self.c_rotate_r.d.next = self.c_rotate.val();
        self.ka_is_x_r.clock.next = self.clock.val();
        self.ka_is_x_r.d.next = self.ka_is_x.val();
        self.a_set_r.clock.next = self.clock.val();
        self.a_set_r.d.next = self.a_set.val();
        self.a_zero_r.clock.next = self.clock.val();
        self.a_zero_r.d.next = self.a_zero.val();
        self.c_zero_r.clock.next = self.clock.val();
        self.c_zero_r.d.next = self.c_zero.val();
        self.head_en_r.clock.next = self.clock.val();
        self.head_en_r.d.next = self.head_en.val();
        self.head_first_r.clock.next = self.clock.val();
        self.head_first_r.d.next = self.head_first.val();
        for np2 in self._np2..(self._np2 + 1) {
            for i in 0..self.post_r.len() {
                self.post_r[i].clock.next = self.clock.val();
                self.post_r[i].d.next = self.post[i % np2].val();
            }
        }
        self.head_done_r.clock.next = self.clock.val();
        self.head_done_r.d.next = self.head_done.val();
        self.head_step_first_r.clock.next = self.clock.val();
        self.head_step_first_r.d.next = self.head_step_first.val();
        self.head_step_last_r.clock.next = self.clock.val();
        self.head_step_last_r.d.next = self.head_step_last.val();
        self.head_set_r.clock.next = self.clock.val();
        self.head_set_r.d.next = self.head_set.val();
        self.upd_en_r.clock.next = self.clock.val();
        self.upd_en_r.d.next = self.upd_en.val();
        self.upd_j_r.clock.next = self.clock.val();
        self.upd_j_r.d.next = self.upd_j.val();
        self.upd_set_r.clock.next = self.clock.val();
        self.upd_set_r.d.next = self.upd_set.val();
        self.upd_zero_r.clock.next = self.clock.val();
        self.upd_zero_r.d.next = self.upd_zero.val();
        for m in 0..self._m {
            self.unit_is_a_r[m].clock.next = self.clock.val();
            self.unit_is_a_r[m].d.next = self.unit_is_a[m].val();
            self.weight_r[m].clock.next = self.clock.val();
            self.weight_r[m].d.next = self.weight[m].val();
            self.bias_r[m].clock.next = self.clock.val();
            self.bias_r[m].d.next = self.bias[m].val();
        }
        for c in 0..3 {
            self.head_weight_r[c].clock.next = self.clock.val();
            self.head_weight_r[c].d.next = self.head_weight[c].val();
        }
        // Memories: h (read k for the C set's operand stream, ka for the A
        // set's, j for the update) and x.
        for s in 0..2 {
            self.state[s].clock.next = self.clock.val();
            self.state[s].raddr0.next = self.raddr_r[s].q.val();
            self.state[s].raddr1.next = self.upd_j_r.q.val();
            self.state[s].waddr.next = self.wb_j.q.val();
            self.state[s].wdata.next = self.wb_h.q.val();
            self.state[s].we.next = self.wb_en.q.val() && (self.wb_set.q.val() == (s == 1));
            self.input[s].clock.next = self.clock.val();
            self.input[s].we.next = self.x_we_r.q.val() && (self.x_set_r.q.val() == (s == 1));
            self.input[s].waddr.next = self.x_waddr_r.q.val();
            self.input[s].wdata.next = self.x_wdata_r.q.val();
            self.input[s].raddr1.next = 0.into();
        }
        self.input[0].raddr0.next = self.x_raddr0_r.q.val();
        self.input[1].raddr0.next = self.x_raddr1_r.q.val();
        if self.a_set_r.q.val() {
            self.h_a.next = self.state[1].rdata0.val();
            self.h_c.next = self.state[0].rdata0.val();
            self.x_a.next = self.input[1].rdata0.val();
            self.x_c.next = self.input[0].rdata0.val();
        } else {
            self.h_a.next = self.state[0].rdata0.val();
            self.h_c.next = self.state[1].rdata0.val();
            self.x_a.next = self.input[0].rdata0.val();
            self.x_c.next = self.input[1].rdata0.val();
        }
        // The A set (in the first pass after a boundary) may read a unit
        // the update has not written yet: the unit in write-back, written
        // at the end of this cycle, is taken from its register here; the
        // unit being narrowed (newer, so it wins) from the same register a
        // cycle later, in front of the operand copies and the head.
        self.forward.d.next = self.v_en.q.val()
            && (self.v_set.q.val() == self.a_set.val())
            && (self.v_j.q.val() == self.ka.val());
        self.forward_wb.d.next = self.w_en.q.val()
            && (self.w_set.q.val() == self.a_set.val())
            && (self.w_j.q.val() == self.ka.val());
        if self.forward_wb.q.val() {
            self.h_a.next = self.wb_h.q.val();
        }
        self.late_a.d.next =
            self.forward.q.val() && !self.ka_is_x_r.q.val() && !self.a_zero_r.q.val();
        self.late_head.d.next = self.forward.q.val();
        self.x_a_q.d.next = self.x_a.val();
        self.x_c_q.d.next = self.x_c.val();
        // Registers z, r (per set) and c (shared), read at unit 0 as they
        // rotate: the C set's r by one unit per state term it issues (a
        // pass turns it once round), z of the updated set and c by one unit
        // per update step (j = 0..H-1 in order). No H-way select keyed by a
        // broadcast counter (docs/hardware.md: what limits Fmax).
        self.r_k.next = self.r1[0].q.val();
        if self.a_set_r.q.val() {
            self.r_k.next = self.r0[0].q.val();
        }
        self.z_j.next = self.z0[0].q.val();
        if self.upd_set_r.q.val() {
            self.z_j.next = self.z1[0].q.val();
        }
        self.c_j.next = self.cand[0].q.val();
        for j in 0..self._h {
            self.z0[j].clock.next = self.clock.val();
            self.z1[j].clock.next = self.clock.val();
            self.r0[j].clock.next = self.clock.val();
            self.r1[j].clock.next = self.clock.val();
            self.cand[j].clock.next = self.clock.val();
            self.z0[j].d.next = self.z0[j].q.val();
            self.z1[j].d.next = self.z1[j].q.val();
            self.r0[j].d.next = self.r0[j].q.val();
            self.r1[j].d.next = self.r1[j].q.val();
            self.cand[j].d.next = self.cand[j].q.val();
        }
        for hh in self._h..(self._h + 1) {
            for j in 0..self._h {
                if self.c_rotate_r.q.val() {
                    if self.a_set_r.q.val() {
                        self.r0[j].d.next = self.r0[(j + 1) % hh].q.val();
                    } else {
                        self.r1[j].d.next = self.r1[(j + 1) % hh].q.val();
                    }
                }
                if self.upd_en_r.q.val() {
                    self.cand[j].d.next = self.cand[(j + 1) % hh].q.val();
                    if self.upd_set_r.q.val() {
                        self.z1[j].d.next = self.z1[(j + 1) % hh].q.val();
                    } else {
                        self.z0[j].d.next = self.z0[(j + 1) % hh].q.val();
                    }
                }
            }
        }
        // Stage 0: the C set's operand reads, registered as read in the
        // reset product's operand registers (the selects and the LUT-RAM
        // reads are one path, the multiply another: docs/hardware.md).
        self.reset_mul.clock.next = self.clock.val();
        self.reset_mul.a.next = self.r_k.val();
        self.reset_mul.b.next = self.h_c.val();
        self.p_xc.d.next = self.x_c_q.q.val();
        self.p_isx.d.next = self.k_is_x_r.q.val();
        self.p_czero.d.next = self.c_zero_r.q.val();
        // Stage 0b: the reset product r_k h_k (DSP), registered; stage 0c:
        // registered again in the fabric, and the A set's read at ka into
        // its operand register.
        self.q_xc.d.next = self.p_xc.q.val();
        self.q_isx.d.next = self.p_isx.q.val();
        self.q_czero.d.next = self.p_czero.q.val();
        self.c_prod.d.next = self.reset_mul.out.val();
        self.c_xc.d.next = self.q_xc.q.val();
        self.c_isx.d.next = self.q_isx.q.val();
        self.c_czero.d.next = self.q_czero.q.val();
        self.op_head.d.next = self.h_a.val();
        if self.ka_is_x_r.q.val() {
            self.op_a.d.next = self.x_a_q.q.val();
        } else {
            self.op_a.d.next = self.h_a.val();
            if self.a_zero_r.q.val() {
                self.op_a.d.next = 0.into();
            }
        }
        // Stage 1a: the operand copies (the C operand narrowed per copy);
        // stage 1b: the MAC inputs. The MAC controls are input copies like
        // the rest, one per group of units.
        for g in 0..self._copies {
            self.mac_en_r[g].clock.next = self.clock.val();
            self.mac_en_r[g].d.next = self.mac_en.val();
            self.mac_first_r[g].clock.next = self.clock.val();
            self.mac_first_r[g].d.next = self.mac_first.val();
            self.op_a_copy[g].clock.next = self.clock.val();
            self.op_a_copy[g].d.next = self.op_a.q.val();
            if self.late_a.q.val() {
                self.op_a_copy[g].d.next = self.wb_h.q.val();
            }
            self.reset_q[g].v.next = self.c_prod.q.val();
            self.op_c_copy[g].clock.next = self.clock.val();
            if self.c_isx.q.val() {
                self.op_c_copy[g].d.next = self.c_xc.q.val();
            } else {
                self.op_c_copy[g].d.next = self.reset_q[g].out.val();
                if self.c_czero.q.val() {
                    self.op_c_copy[g].d.next = 0.into();
                }
            }
        }
        for per in self._per_copy..(self._per_copy + 1) {
            for m in 0..self._m {
                self.mac[m].clock.next = self.clock.val();
                self.mac[m].en.next = self.mac_en_r[m / per].q.val();
                self.mac[m].first.next = self.mac_first_r[m / per].q.val();
                self.mac[m].gate_row.next = self.unit_is_a_r[m].q.val();
                self.mac[m].bias.next = self.bias_r[m].q.val();
                self.mac[m].w.next = self.weight_r[m].q.val();
                self.mac[m].x.next = self.op_c_copy[m / per].q.val();
                if self.unit_is_a_r[m].q.val() {
                    self.mac[m].x.next = self.op_a_copy[m / per].q.val();
                }
            }
        }
        // Stage 2: row j of pass p sits in unit j - p M; z and r rows are
        // the A set's (the finishing set of `post`), c rows the C set's.
        // A row's write enable is the `post` copy of its unit's group.
        for np in self._np..(self._np + 1) {
            for mm in self._m..(self._m + 1) {
                for hh in self._h..(self._h + 1) {
                    for per in self._per_copy..(self._per_copy + 1) {
                        for j in 0..self._h {
                            if self.post_r[(j % mm) / per * (2 * np) + j / mm].q.val() {
                                self.z0[j].d.next = self.mac[j % mm].gate.val();
                            }
                            if self.post_r[(j % mm) / per * (2 * np) + np + j / mm].q.val() {
                                self.z1[j].d.next = self.mac[j % mm].gate.val();
                            }
                            if self.post_r[((hh + j) % mm) / per * (2 * np) + (hh + j) / mm]
                                .q
                                .val()
                            {
                                self.r0[j].d.next = self.mac[(hh + j) % mm].gate.val();
                            }
                            if self.post_r[((hh + j) % mm) / per * (2 * np) + np + (hh + j) / mm]
                                .q
                                .val()
                            {
                                self.r1[j].d.next = self.mac[(hh + j) % mm].gate.val();
                            }
                            if self.post_r[((2 * hh + j) % mm) / per * (2 * np) + (2 * hh + j) / mm]
                                .q
                                .val()
                                || self.post_r
                                    [((2 * hh + j) % mm) / per * (2 * np) + np + (2 * hh + j) / mm]
                                    .q
                                    .val()
                            {
                                self.cand[j].d.next = self.mac[(2 * hh + j) % mm].cand.val();
                            }
                        }
                    }
                }
            }
        }
        // State update h'_j = narrow(S c + z (h - c)), one unit per cycle,
        // in five stages: u0 reads (z_j, c_j selects, h_j) into the
        // multiplier, u1 its product, u2 the product into the fabric, u3
        // the narrowing of the product plus S c (c's rounding offset) into
        // `wb_h`, u4 the write-back; the A set's read of h_j in u3 or u4
        // takes `wb_h` (above; the controller leaves one boundary cycle for
        // that).
        self.h_j.next = self.state[0].rdata1.val();
        if self.upd_set_r.q.val() {
            self.h_j.next = self.state[1].rdata1.val();
        }
        if self.upd_zero_r.q.val() {
            self.h_j.next = 0.into();
        }
        self.update_mul.clock.next = self.clock.val();
        self.update_mul.a.next = self.z_j.val();
        self.update_mul.b.next = self.h_j.val() - self.c_j.val();
        self.u_c.d.next = self.c_j.val();
        self.u_j.d.next = self.upd_j_r.q.val();
        self.u_set.d.next = self.upd_set_r.q.val();
        self.u_en.d.next = self.upd_en_r.q.val();
        self.v_c.d.next = self.u_c.q.val();
        self.v_j.d.next = self.u_j.q.val();
        self.v_set.d.next = self.u_set.q.val();
        self.v_en.d.next = self.u_en.q.val();
        self.w_prod.d.next = self.update_mul.out.val();
        self.w_c.d.next = self.v_c.q.val();
        self.w_j.d.next = self.v_j.q.val();
        self.w_set.d.next = self.v_set.q.val();
        self.w_en.d.next = self.v_en.q.val();
        self.update_q.v.next = self.w_prod.q.val();
        self.update_q.c.next = self.w_c.q.val();
        self.wb_h.d.next = self.update_q.out.val();
        self.wb_j.d.next = self.w_j.q.val();
        self.wb_set.d.next = self.w_set.q.val();
        self.wb_en.d.next = self.w_en.q.val();
        // Head.
        self.head.clock.next = self.clock.val();
        self.head.en.next = self.head_en_r.q.val();
        self.head.first.next = self.head_first_r.q.val();
        // One assignment to the head's port per evaluation: a port written
        // twice glitches, and the head's outputs glitch back into this
        // block, which Icarus Verilog evaluates forever.
        self.head_x.next = self.op_head.q.val();
        if self.late_head.q.val() {
            self.head_x.next = self.wb_h.q.val();
        }
        self.head.x.next = self.head_x.val();
        self.head.done.next = self.head_done_r.q.val();
        self.head.step_first.next = self.head_step_first_r.q.val();
        self.head.step_last.next = self.head_step_last_r.q.val();
        self.head.set.next = self.head_set_r.q.val();
        for c in 0..3 {
            self.head.w[c].next = self.head_weight_r[c].q.val();
            self.channel[c].next = self.head.out[c].val();
        }
        self.amp1.next = self.head.amp1.val();
        self.amp2.next = self.head.amp2.val();
        self.sum1.next = self.head.sum1.val();
        self.sum2.next = self.head.sum2.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtl::prim::{sx, tc};
    use rand::{Rng, SeedableRng};

    fn edge(l: &mut Lane) {
        l.clock.next = Clock { clk: true };
        assert!(simulate(l, 100));
        l.clock.next = Clock { clk: false };
        assert!(simulate(l, 100));
    }

    /// The two streaming units of a lane: the reset operand
    /// narrow(r_k h_k) in front of the C set's MACs, and the state update
    /// h'_j = narrow(S c_j + z_j (h_j - c_j)) written back into h.
    #[test]
    fn reset_and_update_streams_follow_the_contract() {
        let fmt = Format::new(8).unwrap();
        let (h, q, one) = (3, fmt.qmax(), fmt.one());
        let mut lane = Lane::new(fmt, h, 3 * h, 11, [0; 3], 3, Dsp::Inferred);
        lane.connect_all();
        check_all(&lane).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for case in 0..200 {
            let j = case % h;
            let (z, hv, c) = (
                rng.gen_range(0..=one),
                rng.gen_range(-q..=q),
                rng.gen_range(-q..=q),
            );
            let zero = case % 7 == 0;
            // Set 1's z, the shared c (every unit: they rotate as they are
            // read at unit 0) and set 1's h_j; stream unit j.
            for i in 0..h {
                lane.z1[i].q.next = tc(z);
                lane.cand[i].q.next = tc(c);
            }
            lane.state[1]._mem[j] = tc(hv);
            lane.upd_en.next = true;
            lane.upd_set.next = true;
            lane.upd_j.next = (j as u64).into();
            lane.upd_zero.next = zero;
            // Reset operand of the C set (set 0 while set 1 is the A set).
            let r = rng.gen_range(0..=one);
            for i in 0..h {
                lane.r0[i].q.next = tc(r);
            }
            lane.c_rotate.next = true;
            lane.state[0]._mem[j] = tc(hv);
            lane.a_set.next = true;
            lane.k.next = (j as u64).into();
            lane.k_is_x.next = false;
            lane.c_zero.next = false;
            assert!(simulate(&mut lane, 100));
            // One edge into the lane's input registers, then five stages
            // each (the inputs held: the same unit streams five times).
            for _ in 0..6 {
                edge(&mut lane);
            }
            let want = fmt.update(z, if zero { 0 } else { hv }, c);
            assert_eq!(
                sx(lane.state[1]._mem[j]),
                want,
                "z {z} h {hv} c {c} zero {zero}"
            );
            for copy in &lane.op_c_copy {
                assert_eq!(sx(copy.q.val()), fmt.reset(r, hv), "r {r} h {hv}");
            }
        }
    }

    /// The A set reads a unit while the update is narrowing it, writing it
    /// back, or after: every distance gives the updated h_j, to the A
    /// operand copies and to the head (a boundary that waits on the
    /// extraction puts the reads any number of cycles behind the update).
    #[test]
    fn the_a_read_takes_the_update_at_every_distance() {
        let fmt = Format::new(8).unwrap();
        let (h, q, one) = (4, fmt.qmax(), fmt.one());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut seen = 0;
        for case in 0..40 {
            let mut lane = Lane::new(fmt, h, 3 * h, 11, [0; 3], 3, Dsp::Inferred);
            lane.connect_all();
            let j = case % h;
            let (z, hv, c) = (
                rng.gen_range(0..=one),
                rng.gen_range(-q..=q),
                rng.gen_range(-q..=q),
            );
            let want = fmt.update(z, hv, c);
            if want == hv {
                continue;
            }
            seen += 1;
            for i in 0..h {
                lane.z1[i].q.next = tc(z);
                lane.cand[i].q.next = tc(c);
            }
            lane.state[1]._mem[j] = tc(hv);
            // Set 1 is the A set and reads unit j every cycle; unit j of
            // set 1 enters the update stream once, at the first edge.
            lane.a_set.next = true;
            lane.ka.next = (j as u64).into();
            lane.upd_en.next = true;
            lane.upd_set.next = true;
            lane.upd_j.next = (j as u64).into();
            assert!(simulate(&mut lane, 100));
            for n in 1..=10 {
                edge(&mut lane);
                lane.upd_en.next = false;
                assert!(simulate(&mut lane, 100));
                // After edge n the copies hold the read of the cycle after
                // edge n - 2 and the head's operand that of n - 1; the unit
                // is narrowed in the cycle after edge 4 (u3).
                if n >= 3 {
                    let got = sx(lane.op_a_copy[0].q.val());
                    let expect = if n >= 6 { want } else { hv };
                    assert_eq!(got, expect, "A operand after edge {n}, z {z} h {hv} c {c}");
                }
                if n >= 2 {
                    let got = sx(lane.head.x.val());
                    let expect = if n >= 5 { want } else { hv };
                    assert_eq!(
                        got, expect,
                        "head operand after edge {n}, z {z} h {hv} c {c}"
                    );
                }
            }
        }
        assert!(seen > 20);
    }
}
