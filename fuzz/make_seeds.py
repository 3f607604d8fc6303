"""Writes small seed GGUFs for the fuzzer into fuzz/corpus/gguf_reader (git-ignored).

Needs `pip install gguf==0.19.0 numpy`. Seeds: every metadata value type (nested arrays too),
a toy Llama header with a gpt2 tokenizer, and a few tensors of every block type the reader
knows, so mutations start from deep inside valid files.
"""
import os
import sys

import numpy as np
import gguf
from gguf.constants import GGMLQuantizationType as Q

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "gguf_reader")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)


def write(name, fill):
    path = os.path.join(out, name)
    w = gguf.GGUFWriter(path, arch="llama")
    fill(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(path, os.path.getsize(path))


def all_types(w):
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -5)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -300)
    w.add_uint32("t.u32", 7)
    w.add_int32("t.i32", -7)
    w.add_float32("t.f32", 1.5)
    w.add_uint64("t.u64", 1 << 40)
    w.add_int64("t.i64", -(1 << 40))
    w.add_float64("t.f64", 2.25)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo")
    w.add_array("t.arr_i32", [1, 2, 3])
    w.add_array("t.arr_str", ["a", "bc", ""])
    w.add_array("t.arr_nested", [[1, 2], [3]])
    w.add_array("t.arr_long", list(range(100)))


def toy_llama(w):
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(32)
    w.add_feed_forward_length(64)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    tokens = [bytes([b]).decode("latin-1") for b in range(97, 123)] + ["ab", "<s>", "</s>"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types([1] * 27 + [3, 3])
    w.add_token_merges(["a b"])
    w.add_bos_token_id(27)
    w.add_eos_token_id(28)
    w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    for name, shape in [("token_embd.weight", (29, 32)), ("output_norm.weight", (32,))]:
        w.add_tensor(name, rng.standard_normal(shape).astype(np.float32))


def block_types(w):
    for t in [Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K]:
        block_elems, block_bytes = gguf.GGML_QUANT_SIZES[t]
        raw = rng.integers(0, 256, (2, 256 // block_elems * block_bytes), dtype=np.uint8)
        w.add_tensor(f"t.{t.name}", raw, raw_dtype=t)
    w.add_tensor("t.F32", rng.standard_normal((3, 5)).astype(np.float32))


write("all_types.gguf", all_types)
write("toy_llama.gguf", toy_llama)
write("block_types.gguf", block_types)
sys.exit(0)
