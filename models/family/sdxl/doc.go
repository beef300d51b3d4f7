// Package sdxl is the SDXL model family of cocoflow, registered as "sdxl": the diffusers/optimum
// ONNX export of Stable Diffusion XL behind family.Generator.
package sdxl
