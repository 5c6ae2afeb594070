## flimgru board top for the Digilent Arty A7-100T (xc7a100tcsg324-1).
## Kept by hand; only the pins the top (boards/arty_*.v, src/boards/arty.rs) uses.
## Pins from Digilent's public Arty-A7-100-Master.xdc (Digilent/digilent-xdc);
## port names are the top's. Protocol and pin table: docs/boards.md.

## 100 MHz oscillator; the MMCME2_BASE in the top makes the logic clock
## (Vivado derives the generated clock from this one).
set_property -dict { PACKAGE_PIN E3  IOSTANDARD LVCMOS33 } [get_ports { clk100mhz }]; # gclk[100]
create_clock -add -name sys_clk_pin -period 10.00 -waveform {0 5} [get_ports { clk100mhz }];

## USB-UART (FT2232HQ channel B). uart_txd_in: FTDI transmits, FPGA receives.
set_property -dict { PACKAGE_PIN A9  IOSTANDARD LVCMOS33 } [get_ports { uart_txd_in }];
set_property -dict { PACKAGE_PIN D10 IOSTANDARD LVCMOS33 } [get_ports { uart_rxd_out }];

## Slide switch SW0: up = parallel port, down = UART.
set_property -dict { PACKAGE_PIN A8  IOSTANDARD LVCMOS33 } [get_ports { sw0 }];

## LEDs LD4..LD7: heartbeat, MMCM locked, busy, error (sticky).
set_property -dict { PACKAGE_PIN H5  IOSTANDARD LVCMOS33 } [get_ports { led0 }];
set_property -dict { PACKAGE_PIN J5  IOSTANDARD LVCMOS33 } [get_ports { led1 }];
set_property -dict { PACKAGE_PIN T9  IOSTANDARD LVCMOS33 } [get_ports { led2 }];
set_property -dict { PACKAGE_PIN T10 IOSTANDARD LVCMOS33 } [get_ports { led3 }];

## Parallel port (four-phase valid/ready handshake, docs/boards.md).
## Pmod JA (pins 1-4, 7-10): host -> FPGA data bits 0..7.
set_property -dict { PACKAGE_PIN G13 IOSTANDARD LVCMOS33 PULLDOWN TRUE } [get_ports { par_in_data[0] }]; # ja[1]
set_property -dict { PACKAGE_PIN B11 IOSTANDARD LVCMOS33 PULLDOWN TRUE } [get_ports { par_in_data[1] }]; # ja[2]
set_property -dict { PACKAGE_PIN A11 IOSTANDARD LVCMOS33 PULLDOWN TRUE } [get_ports { par_in_data[2] }]; # ja[3]
set_property -dict { PACKAGE_PIN D12 IOSTANDARD LVCMOS33 PULLDOWN TRUE } [get_ports { par_in_data[3] }]; # ja[4]
set_property -dict { PACKAGE_PIN D13 IOSTANDARD LVCMOS33 PULLDOWN TRUE } [get_ports { par_in_data[4] }]; # ja[7]
set_property -dict { PACKAGE_PIN B18 IOSTANDARD LVCMOS33 PULLDOWN TRUE } [get_ports { par_in_data[5] }]; # ja[8]
set_property -dict { PACKAGE_PIN A18 IOSTANDARD LVCMOS33 PULLDOWN TRUE } [get_ports { par_in_data[6] }]; # ja[9]
set_property -dict { PACKAGE_PIN K16 IOSTANDARD LVCMOS33 PULLDOWN TRUE } [get_ports { par_in_data[7] }]; # ja[10]
## Pmod JB (pins 1-4, 7-10): FPGA -> host data bits 0..7.
set_property -dict { PACKAGE_PIN E15 IOSTANDARD LVCMOS33 } [get_ports { par_out_data[0] }]; # jb[1]
set_property -dict { PACKAGE_PIN E16 IOSTANDARD LVCMOS33 } [get_ports { par_out_data[1] }]; # jb[2]
set_property -dict { PACKAGE_PIN D15 IOSTANDARD LVCMOS33 } [get_ports { par_out_data[2] }]; # jb[3]
set_property -dict { PACKAGE_PIN C15 IOSTANDARD LVCMOS33 } [get_ports { par_out_data[3] }]; # jb[4]
set_property -dict { PACKAGE_PIN J17 IOSTANDARD LVCMOS33 } [get_ports { par_out_data[4] }]; # jb[7]
set_property -dict { PACKAGE_PIN J18 IOSTANDARD LVCMOS33 } [get_ports { par_out_data[5] }]; # jb[8]
set_property -dict { PACKAGE_PIN K15 IOSTANDARD LVCMOS33 } [get_ports { par_out_data[6] }]; # jb[9]
set_property -dict { PACKAGE_PIN J15 IOSTANDARD LVCMOS33 } [get_ports { par_out_data[7] }]; # jb[10]
## Pmod JC pins 1-4: the handshakes.
set_property -dict { PACKAGE_PIN U12 IOSTANDARD LVCMOS33 PULLDOWN TRUE } [get_ports { par_in_valid }];  # jc[1], input
set_property -dict { PACKAGE_PIN V12 IOSTANDARD LVCMOS33 } [get_ports { par_in_ready }];                 # jc[2], output
set_property -dict { PACKAGE_PIN V10 IOSTANDARD LVCMOS33 } [get_ports { par_out_valid }];                # jc[3], output
set_property -dict { PACKAGE_PIN V11 IOSTANDARD LVCMOS33 PULLDOWN TRUE } [get_ports { par_out_ready }]; # jc[4], input

## Asynchronous inputs go through two-flip-flop synchronisers in the top;
## outputs are registers: no I/O timing to meet.
set_false_path -from [get_ports { uart_txd_in sw0 par_in_data[*] par_in_valid par_out_ready }]
set_false_path -to [get_ports { uart_rxd_out led0 led1 led2 led3 par_in_ready par_out_data[*] par_out_valid }]

## Bank voltage for the configuration pins (3.3 V on the Arty).
set_property CFGBVS VCCO [current_design]
set_property CONFIG_VOLTAGE 3.3 [current_design]
