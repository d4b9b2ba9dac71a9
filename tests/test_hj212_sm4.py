"""SM4 encryption of the HJ 212-2025 data area (drivers/hj212/sm4.py and the sealed frames of frame.py).

The agent and the reference receiver share this codec, so it is pinned by things neither made: the SM4 test
vector of GB/T 32907-2016 Appendix A, the OpenSSL command line, and the two encrypted frames printed in
HJ 212-2025 Appendix A.2 (key: sixteen bytes 0x30; as transcribed from the standard's PDF by the
Daidai52640/cems-data-pipeline project, tests/protocol/hj212/test_vectors.json).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.uplink.hj212_key import Sm4KeyError, load_sm4_key
from drivers.hj212.errors import Hj212CipherError, Hj212CrcError, Hj212Error, Hj212LengthError
from drivers.hj212.frame import (
    FrameSplitter,
    SealRules,
    crc16,
    encode_frame,
    open_frame,
    seal_frame,
)
from drivers.hj212.packet import decode_packet
from drivers.hj212.sm4 import Sm4Key, decrypt_blocks, decrypt_cp, encrypt_blocks, encrypt_cp

GBT_32907_KEY = "0123456789abcdeffedcba9876543210"
GBT_32907_CIPHER = "681edf34d206965e86b3e94f536e4246"
A2_KEY = Sm4Key(b"\x30" * 16)
A2_HEAD = b"QN=20240520210700000;ST=31;CN=2051;PW=123456;MN=010000A8900016F000169DC0;Flag=9;CP=&&"
# Appendix A.2, example 1/2: a data area of 208 bytes, 13 whole blocks.
A2_PLAIN_CP = (
    b"DataTime=20240520210600;a01011-Min=1.35,a01011-Avg=1.35,a01011-Max=1.35,a01011-Flag=N;a01012-Min=9.3,"
    b"a01012-Avg=9.3,a01012-Max=9.3,a01012-Flag=N;a01014-Min=3.20,a01014-Avg=3.211,a01014-Max=3.212,a01014-Flag=N"
)
A2_CIPHER_HEX = (
    "E43E159ACFAB242CB53155FB8B9281A1A242577ABFAED881BE88B72D69FC55ED1A80119FAAC8B3CD33D285CC76F57F2CA7F88B9573"
    "C6647E0F07E24609BD6B63EB20C5B9784F28E71D2F4994FF61D9E1C2B3075592B4D1E09C4D8BB27BE97B559E3DA6643781A6F477"
    "769DEEB009B10DFFF3426922725D607DC4480F0CAC5F70DB2587B124BCB281592721D6E4BC180A97E5E111499CBE822E31C8D776"
    "1553543AA24207C290997BBDE64F9266BC5F529A172E381C1D898CA1A0D771A914A7B2D7467C70B94F1D4A7B0350A48DBF8B41"
)
# Appendix A.2, example 3/4: 147 bytes, 9 whole blocks and a plain tail of three ("g=N").
A2_PLAIN_CP_TAIL = (
    b"DataTime=20240520210600;a01011-Min=1.35,a01011-Avg=1.35,a01011-Max=1.35,a01011-Flag=N;a01014-Min=3.20,"
    b"a01014-Avg=3.20,a01014-Max=3.20,a01014-Flag=N"
)
A2_CIPHER_TAIL_HEX = (
    "E43E159ACFAB242CB53155FB8B9281A1A242577ABFAED881BE88B72D69FC55ED1A80119FAAC8B3CD33D285CC76F57F2CA7F88B9573"
    "C6647E0F07E24609BD6B63EB20C5B9784F28E71D2F4994FF61D9E13B391A1D2A454B65388D5D9435DBF021528C7BF9755EF16518"
    "710C0CAC0ADEF9C5156CD0A5A17674AC0ED2ABC40023E9EF70128554B82438E91ADCE98A0D03A4"
)


def as_sent(cipher_hex: str, tail: bytes = b"") -> bytes:
    """A data area written as the standard prints it: `{0xE4,0x3E,...}` then the plain tail."""
    return b"{" + b",".join(b"0x" + cipher_hex[i : i + 2].encode() for i in range(0, len(cipher_hex), 2)) + b"}" + tail


def standard_frame(length: int, cp: bytes, crc: str) -> bytes:
    return b"##%04d" % length + A2_HEAD + cp + b"&&" + crc.encode() + b"\r\n"


class TestSm4Block:
    def test_the_gbt_32907_appendix_a_vector(self) -> None:
        """SM4 of the standard's example key and plaintext gives its published ciphertext, and back."""
        key = Sm4Key.from_hex(GBT_32907_KEY)
        assert encrypt_blocks(bytes.fromhex(GBT_32907_KEY), key).hex() == GBT_32907_CIPHER
        assert decrypt_blocks(bytes.fromhex(GBT_32907_CIPHER), key).hex() == GBT_32907_KEY

    @pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line")
    def test_openssl_agrees_on_a_data_area(self) -> None:
        """OpenSSL's sm4-ecb without padding gives the same bytes for the whole blocks of a data area."""
        key = Sm4Key.from_hex("00112233445566778899aabbccddeeff")
        plain = A2_PLAIN_CP[:192]
        result = subprocess.run(
            ["openssl", "enc", "-sm4-ecb", "-nopad", "-K", "00112233445566778899aabbccddeeff"],
            input=plain,
            capture_output=True,
            check=False,
            timeout=30,
        )
        if result.returncode != 0:
            pytest.skip(f"this openssl has no SM4: {result.stderr.decode(errors='replace')[:120]}")
        assert encrypt_blocks(plain, key) == result.stdout

    @pytest.mark.parametrize(
        ("text", "message"),
        [("0123", "32 hex digits"), ("z" * 32, "not all hex digits"), ("00" * 17, "found 34")],
    )
    def test_a_key_that_is_not_128_bits_of_hex_is_refused(self, text: str, message: str) -> None:
        """A key file with the wrong length or characters is refused with what is wrong, never half-used."""
        with pytest.raises(ValueError, match=message):
            Sm4Key.from_hex(text)

    def test_a_key_never_shows_in_a_repr(self) -> None:
        """Logging a key object does not leak it."""
        assert GBT_32907_KEY not in repr(Sm4Key.from_hex(GBT_32907_KEY))


class TestTheStandardsEncryptedFrames:
    def test_whole_blocks_encrypt_to_the_printed_ciphertext(self) -> None:
        """Appendix A.2 example 2: the 208-byte data area encrypts to the bytes the standard prints."""
        assert encrypt_cp(A2_PLAIN_CP, A2_KEY) == as_sent(A2_CIPHER_HEX)

    def test_a_short_tail_stays_plain(self) -> None:
        """Appendix A.2 example 4: nine blocks encrypted, the last three bytes ('g=N') left as they are."""
        sent = encrypt_cp(A2_PLAIN_CP_TAIL, A2_KEY)
        assert sent == as_sent(A2_CIPHER_TAIL_HEX, b"g=N")
        assert decrypt_cp(sent, A2_KEY) == A2_PLAIN_CP_TAIL

    def test_a_data_area_shorter_than_a_block_goes_plain(self) -> None:
        """Fewer than 16 bytes make no whole block, so nothing is encrypted (the standard's rule)."""
        assert encrypt_cp(b"DataTime=1", A2_KEY) == b"DataTime=1"

    @pytest.mark.parametrize(
        ("length", "cp", "crc", "plain"),
        [
            (295, as_sent(A2_CIPHER_HEX), "2200", A2_PLAIN_CP),
            (234, as_sent(A2_CIPHER_TAIL_HEX, b"g=N"), "B541", A2_PLAIN_CP_TAIL),
        ],
    )
    def test_the_printed_frames_open_under_the_standards_rules(
        self, length: int, cp: bytes, crc: str, plain: bytes
    ) -> None:
        """The frames as printed (length and CRC of the plain segment) open to the plain data segment."""
        opened = open_frame(standard_frame(length, cp, crc), A2_KEY)
        assert opened.encrypted
        assert opened.data == A2_HEAD + plain + b"&&"
        assert crc16(opened.data) == int(crc, 16)
        assert decode_packet(opened.data).cp_items()["a01011-Avg"] == "1.35"

    def test_sealing_the_plain_segment_gives_the_printed_frame(self) -> None:
        """Sealing example 1's plain segment with the key gives example 2 byte for byte."""
        assert seal_frame(A2_HEAD + A2_PLAIN_CP + b"&&", A2_KEY) == standard_frame(295, as_sent(A2_CIPHER_HEX), "2200")

    def test_the_transmitted_rules_count_and_check_the_segment_as_sent(self) -> None:
        """Under `transmitted` the length is the sent segment's and the CRC is over it; the other side's rules
        then reject the frame by its length."""
        rules = SealRules(length_of="transmitted", crc_over="transmitted")
        frame = seal_frame(A2_HEAD + A2_PLAIN_CP + b"&&", A2_KEY, rules)
        sent = frame[6:-6]
        assert int(frame[2:6]) == len(sent) == 1128
        assert int(frame[-6:-2], 16) == crc16(sent)
        assert open_frame(frame, A2_KEY, rules).data == A2_HEAD + A2_PLAIN_CP + b"&&"
        with pytest.raises(Hj212LengthError):
            open_frame(frame, A2_KEY)


class TestHostileCiphertext:
    def test_an_encrypted_frame_without_a_key_is_refused_by_name(self) -> None:
        """A receiver without a key says it lacks one, rather than a CRC or parse error."""
        with pytest.raises(Hj212CipherError, match="no key"):
            open_frame(standard_frame(295, as_sent(A2_CIPHER_HEX), "2200"), None)

    def test_the_wrong_key_fails_the_crc(self) -> None:
        """Decrypting with another key gives other bytes, which the CRC over the plain segment catches."""
        with pytest.raises(Hj212CrcError):
            open_frame(standard_frame(295, as_sent(A2_CIPHER_HEX), "2200"), Sm4Key(b"\x31" * 16))

    @pytest.mark.parametrize(
        ("cp", "message"),
        [
            (b"{0xE4,0x3E", "no closing"),
            (b"{0xE4,0xZZ}", "not a byte"),
            (b"{0xE4,0x3E}", "whole 16-byte"),
            (as_sent(A2_CIPHER_HEX, b"x" * 16), "fewer than 16"),
        ],
    )
    def test_malformed_ciphertext_is_named(self, cp: bytes, message: str) -> None:
        """Each way a ciphertext can be malformed is a cipher error saying which."""
        with pytest.raises(Hj212CipherError, match=message):
            decrypt_cp(cp, A2_KEY)

    @given(st.binary(max_size=600))
    def test_arbitrary_bytes_as_a_data_area_raise_only_hj212_errors(self, data: bytes) -> None:
        """Whatever arrives in the data area, decrypting it raises nothing but the codec's own errors."""
        with contextlib.suppress(Hj212Error):
            decrypt_cp(b"{0x" + data, A2_KEY)

    @given(st.binary(max_size=900))
    def test_arbitrary_frames_raise_only_hj212_errors(self, data: bytes) -> None:
        """Arbitrary bytes, alone or inside an envelope with an encrypted-looking CP, raise only codec errors."""
        for frame in (data, b"##0295" + A2_HEAD + b"{0x" + data + b"&&2200\r\n", encode_frame(data[:1000])):
            with contextlib.suppress(Hj212Error):
                open_frame(frame, A2_KEY)

    def test_a_splitter_cuts_sealed_frames_whose_length_counts_the_plain_segment(self) -> None:
        """The plain-length field is shorter than the frame; the splitter still cuts at its CR LF."""
        frame = standard_frame(295, as_sent(A2_CIPHER_HEX), "2200")
        splitter = FrameSplitter()
        cut = [piece for i in range(0, len(frame) * 2, 97) for piece in splitter.feed((frame * 2)[i : i + 97])]
        assert cut == [frame, frame]


class TestKeyFile:
    def test_a_fifo_as_key_file_is_refused_without_blocking(self, tmp_path: Path) -> None:
        """A key path that names a FIFO (no writer ever comes) is refused as not a regular file, at once,
        instead of holding the uplink's thread in open() forever."""
        path = tmp_path / "hj212-sm4.key"
        os.mkfifo(path, 0o600)
        outcome: list[BaseException | None] = []

        def load() -> None:
            try:
                load_sm4_key(path)
            except Sm4KeyError as exc:
                outcome.append(exc)
            else:
                outcome.append(None)

        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        thread.join(5.0)
        if thread.is_alive():  # free the blocked open so that the test process does not hang
            with open(path, "wb"):
                pass
            thread.join(5.0)
            pytest.fail("load_sm4_key blocked on a FIFO")
        assert len(outcome) == 1 and "not a regular file" in str(outcome[0])

    def test_a_directory_as_key_file_is_refused_by_name(self, tmp_path: Path) -> None:
        """A directory where the key file should be is refused with the fix, not read."""
        path = tmp_path / "keys"
        path.mkdir(mode=0o700)
        with pytest.raises(Sm4KeyError, match="not a regular file"):
            load_sm4_key(path)

    def test_a_regular_key_file_loads(self, tmp_path: Path) -> None:
        """32 hex digits in a 0600 file give the key (the same as parsed from the text)."""
        path = tmp_path / "hj212-sm4.key"
        path.write_text("0123456789abcdeffedcba9876543210\n", encoding="ascii")
        path.chmod(0o600)
        assert load_sm4_key(path) == Sm4Key.from_hex("0123456789abcdeffedcba9876543210")
