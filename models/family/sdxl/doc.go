// Package sdxl is cocoflow's SDXL model family, registered as "sdxl": a folder exported by
// `optimum-cli export onnx --model stabilityai/stable-diffusion-xl-base-1.0` behind
// family.Generator, so that the encode, train and generate stages run on it unchanged.
//
// How the export's parts serve CoCoIns (paper §3; eq. numbers there):
//
//   - Tokenizer: tokenizer/ (CLIP BPE, 77 positions, padded with <|endoftext|>); tokenizer_2/
//     shares its vocabulary and pads with "!", which Embed and the host runner put after EOS
//     for encoder 2.
//   - Embed: e_k = table_k[ids], the token embeddings of text_encoder (768-d) and
//     text_encoder_2 (1280-d), read from the exports' own initializers (VocabStats uses the same
//     tables). The pseudo-words w = f(z) are inserted into e_k before the concept token (eq. 4).
//   - Encode: the text encoders rewritten at load (surgery.go) as functions of e_k and the EOS
//     index; States = [h_1^{N-1} ; h_2^{N-1}] (the penultimate hidden states side by side,
//     [B, 77, 2048]), Pooled = text_embeds of encoder 2 (its projected EOS state, [B, 1280]),
//     Extra["time_ids"] = (S, S, 0, 0, S, S), SDXL's micro-conditioning for S x S images.
//   - Denoise: the UNet, ε̂(x_t, t, States, Pooled, time_ids).
//   - Autoencoder: the VAE, latents x = scaling_factor · mean(q(x | image)).
//
// Sampling runs the rewritten encoders and the UNet in ONNX Runtime (the generator is a
// family.HostSampler); training imports the same graphs into GoMLX (Context), so the losses of
// eqs. (7)-(9) reach the mapping network through both encoders and the UNet.
package sdxl
