// A simulation model of the ECP5 MULT18X18D in the one mode hdlgen uses: 18 × 18 two's-complement
// (SIGNEDA = SIGNEDB = 1, SOURCEA = SOURCEB = 0), input registers A and B and the output register
// on CLK0 / CE0 / RST0 (synchronous reset), or none of them. Anything else stops the elaboration.
// Yosys ships MULT18X18D only as a black box, so tests/test_board_dsp.py simulates the core's
// instances with this. Ports and bit order as in yosys's techlibs/lattice/dsp_map_18x18.v.
module MULT18X18D(
    input A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK0, CLK1, CLK2, CLK3, CE0, CE1, CE2, CE3, RST0, RST1, RST2, RST3,
    output P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17, P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33, P34, P35
);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter MULT_BYPASS = "DISABLED";
    generate
        if ((REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0") || (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0")
                || (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0") || REG_PIPELINE_CLK != "NONE"
                || REG_INPUTC_CLK != "NONE" || MULT_BYPASS != "DISABLED")
            ERROR_UNMODELLED_MULT18X18D_MODE error();
    endgenerate

    wire signed [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire signed [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    reg signed [17:0] a_reg, b_reg;
    reg signed [35:0] p_reg;
    wire signed [17:0] a_in = REG_INPUTA_CLK == "CLK0" ? a_reg : a;
    wire signed [17:0] b_in = REG_INPUTB_CLK == "CLK0" ? b_reg : b;
    wire signed [35:0] product = a_in * b_in;
    wire [35:0] p = REG_OUTPUT_CLK == "CLK0" ? p_reg : product;
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p;

    always @(posedge CLK0) begin
        if (RST0) begin
            a_reg <= 0;
            b_reg <= 0;
            p_reg <= 0;
        end else if (CE0) begin
            a_reg <= a;
            b_reg <= b;
            p_reg <= product;
        end
    end

    // the model covers the two's-complement mode only
    always @(posedge CLK0)
        if (SIGNEDA !== 1'b1 || SIGNEDB !== 1'b1 || SOURCEA !== 1'b0 || SOURCEB !== 1'b0) begin
            $display("MULT18X18D model: SIGNEDA/SIGNEDB must be 1 and SOURCEA/SOURCEB 0");
            $finish;
        end
endmodule
