//! Streaming sample-rate conversion between a device's rate and the call's 48 kHz, and the
//! down-mix of multi-channel device audio to mono.
//!
//! Devices deliver audio in whatever chunk sizes their driver picks (512, 441, 1024 frames...);
//! [`StreamResampler`] takes any amount, converts whole blocks with rubato's synchronous FFT
//! resampler (fixed ratio, anti-aliased, the cheapest of its high-quality ones) and hands out
//! exactly the amount asked for, so a 960-sample frame border never coincides with a block
//! border in a way that could click: the resampler's state carries across every call.

use std::collections::VecDeque;

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Why a resampler could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot convert {from} Hz to {to} Hz: {why}")]
pub struct ResampleError {
    from: u32,
    to: u32,
    why: String,
}

/// A mono stream converted from one rate to another, chunk by chunk.
pub struct StreamResampler {
    from: u32,
    to: u32,
    /// None when both rates are equal: samples pass straight through.
    fft: Option<Fft<f32>>,
    pending: Vec<f32>,
    scratch: Vec<f32>,
    out: VecDeque<f32>,
}

impl StreamResampler {
    /// A converter from `from` Hz to `to` Hz (both 8 kHz..=384 kHz).
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        let err = |why: String| ResampleError { from, to, why };
        if !(8_000..=384_000).contains(&from) || !(8_000..=384_000).contains(&to) {
            return Err(err("rates must be between 8 kHz and 384 kHz".into()));
        }
        let fft = if from == to {
            None
        } else {
            // 10 ms blocks: low delay, and a whole number of the 44.1k<->48k minimum block (147).
            let chunk = (from as usize / 100).max(1);
            Some(
                Fft::<f32>::new(from as usize, to as usize, chunk, 1, FixedSync::Input)
                    .map_err(|e| err(e.to_string()))?,
            )
        };
        let scratch = vec![0.0; fft.as_ref().map_or(0, |f| f.output_frames_max())];
        Ok(StreamResampler {
            from,
            to,
            fft,
            pending: Vec::new(),
            scratch,
            out: VecDeque::new(),
        })
    }

    /// The input rate.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// The output rate.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Adds mono input samples; converts every complete block.
    pub fn push(&mut self, input: &[f32]) {
        let Some(fft) = self.fft.as_mut() else {
            self.out.extend(input);
            return;
        };
        self.pending.extend_from_slice(input);
        let mut used = 0;
        while self.pending.len() - used >= fft.input_frames_next() {
            let n_in = fft.input_frames_next();
            let block = &self.pending[used..used + n_in];
            let n_out = self.scratch.len();
            let (Ok(inp), Ok(mut outp)) = (
                InterleavedSlice::new(block, 1, n_in),
                InterleavedSlice::new_mut(&mut self.scratch, 1, n_out),
            ) else {
                break;
            };
            match fft.process_into_buffer(&inp, &mut outp, None) {
                Ok((read, written)) => {
                    used += read.max(1);
                    self.out.extend(&self.scratch[..written]);
                }
                Err(e) => {
                    // Cannot happen with the sizes above; drop the block rather than spin.
                    tracing::warn!(error = %e, "resampler refused a block");
                    used += n_in;
                }
            }
        }
        self.pending.drain(..used);
    }

    /// Output samples ready to be taken.
    pub fn available(&self) -> usize {
        self.out.len()
    }

    /// Takes exactly `n` output samples, or None (and nothing) while fewer are ready.
    pub fn pop(&mut self, n: usize) -> Option<Vec<f32>> {
        (self.out.len() >= n).then(|| self.out.drain(..n).collect())
    }

    /// Takes up to `n` output samples.
    pub fn pop_up_to(&mut self, n: usize) -> Vec<f32> {
        let n = n.min(self.out.len());
        self.out.drain(..n).collect()
    }

    /// Drops everything buffered (after a device switch: old audio would only add delay).
    pub fn clear(&mut self) {
        self.pending.clear();
        self.out.clear();
        if let Some(f) = self.fft.as_mut() {
            f.reset();
        }
    }
}

/// Averages interleaved `channels`-channel samples into mono, appended to `out`.
pub fn downmix_into(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    match channels {
        0 => {}
        1 => out.extend_from_slice(interleaved),
        c => {
            let scale = 1.0 / c as f32;
            out.extend(
                interleaved
                    .chunks_exact(c)
                    .map(|f| f.iter().sum::<f32>() * scale),
            );
        }
    }
}

/// A float sample (-1.0..=1.0) as i16, clipped.
pub fn f32_to_i16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// An i16 sample as float (-1.0..1.0).
pub fn i16_to_f32(s: i16) -> f32 {
    f32::from(s) / 32768.0
}
