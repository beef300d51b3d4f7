// Package diffusion holds the scheduler math of denoising diffusion models:
// noise schedules (ᾱ_t), forward noising, x̂₀/ε/v conversions, sampling
// timestep lists, DDIM steps, classifier-free guidance and a seeded DDIM
// sampling loop.
//
// It knows nothing about any particular model (like diffusers' schedulers):
// tensors are flat float32 slices, arithmetic is done in float64, and a model
// enters only as a callback that predicts the noise ε̂ in x_t.
//
// Timesteps are 0-based as in diffusers: a schedule with T train steps has
// t = 0 … T-1, where AlphaBar(0) = 1-β_0 is the least noisy step (the paper's
// α_1) and AlphaBar(T-1) the noisiest (the paper's α_T). t = -1 stands for
// "no noise" (ᾱ = 1), the target of the last sampling step.
package diffusion
