// Package stages imports every stage kind so that they register with the pipeline; the CLI
// imports it for its side effects.
package stages
