"""``hdlgen flash BITSTREAM --board NAME`` – write a bitstream with openFPGALoader."""

from ..boards.flash import flash
from ..boards.platforms import get_board
from . import print_json


def register(sub):
    p = sub.add_parser("flash", help="write a bitstream from 'hdlgen build' to a board (openFPGALoader)")
    p.add_argument("bitstream", help="the .bin (iCE40), .bit (ECP5) or .fs (Gowin) file 'hdlgen build' wrote")
    p.add_argument("--board", required=True, help="board name (see 'hdlgen boards')")
    p.add_argument("--cable", help="openFPGALoader cable name, for boards without a built-in programmer")
    p.add_argument("--json", action="store_true", help="print what was flashed as one JSON object on the last line")
    p.set_defaults(func=run)


def run(args):
    board = get_board(args.board)
    flash(args.bitstream, board, cable=args.cable)
    print(f"flashed {args.bitstream} to {board.name}")
    if args.json:
        print_json({"bitstream": str(args.bitstream), "board": board.name, "cable": args.cable})
    return 0
