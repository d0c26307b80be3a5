/* The audio thread's half of the jitter buffer, in C: PortAudio calls wb_callback directly, so the device
 * never waits for Python's interpreter lock, however busy the rest of the process is.
 *
 * It reads the ring the Python producer (JitterBuffer.write) fills and keeps the same control words the
 * Python consumer (JitterBuffer.read_into) keeps, in the same int64 array, by the same rules: wb_read is
 * that state machine, sample for sample (tests/engine/test_native_playout.py checks the two agree on random
 * schedules). Each side writes only its own words; the producer's write counter is published after the
 * samples it covers (release), and read before them here (acquire).
 *
 * Counters and positions are in frames; a frame is `channels` floats, interleaved (mono: one float).
 *
 * The module is a Python extension only so that setuptools builds it; Python loads its symbols with ctypes.
 */
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* control words: the layout is mirrored in buffer.py (Ctl), name by name (tests/engine/test_control_words.py) */
enum {
    C_WRITE, C_READ, C_ENDED, C_STOP, C_STATE, C_TARGET, C_TRAILING_LEFT, C_UNDERRUNS, C_UNDERRUN_SAMPLES,
    C_PLAYED, C_SILENCE, C_LEVEL_SUM, C_LEVEL_COUNT, C_LEVEL_MIN, C_LEVEL_MAX, C_FIRST_OFFSET, C_FIRST_BLOCK,
    C_BLOCKS, C_FADE_IN_PENDING, C_END_FADED, C_RESUME,
    /* the sink's words (written only here) */
    C_DEVICE_UNDERFLOWS, C_FIRST_HEARD_NS, C_DONE_AT_NS, C_REC_WRITE, C_REC_LOST, C_CALLBACKS,
    /* the first sound: where the producer wrote it, where it played, and (the sink) when it was heard */
    C_SOUND_AT, C_SOUND_OFFSET, C_SOUND_BLOCK, C_SOUND_HEARD_NS,
    /* the pump: after a block, wake it only if fewer samples than this are left (0: after every block) */
    C_WAKE_BELOW,
    /* pause: held by the producer; the consumer fades out once, then plays silence, nothing read */
    C_PAUSE, C_PAUSE_HELD, C_PAUSED_SAMPLES,
    /* silence ahead of the first sample, for a device that drops the first few ms it is given */
    C_LEAD, C_LEAD_LEFT,
    C_COUNT
};
enum { S_BUFFERING, S_PLAYING, S_UNDERRUN, S_TRAILING, S_DONE };

typedef struct {
    float *ring;
    int64_t capacity;
    float *fade_in; /* fade_len samples rising from 0; the fade-out is the same table read backwards */
    int64_t fade_len;
    int64_t *ctl;
    float *record; /* NULL, or a ring of record_capacity samples a Python thread drains */
    int64_t record_capacity;
    int64_t rate;
    int done_fd; /* a byte is written here once the buffer is done: the event loop wakes */
    int wake_fd; /* -1, or a byte is written here after a block (see C_WAKE_BELOW): elastic playout's pump wakes */
    int64_t channels; /* floats per frame, in the ring, the record ring and the device's block */
} wb_state;

static inline int64_t load(int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void store(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/* used by Python to publish the producer's words (release: the samples before the counter) */
void wb_publish(int64_t *ctl, int64_t index, int64_t value) { store(&ctl[index], value); }

static inline float fade_out_at(const wb_state *st, int64_t k) { return st->fade_in[st->fade_len - 1 - k]; }

/* every channel of frame `i` times `gain` */
static inline void scale(const wb_state *st, float *out, int64_t i, float gain) {
    for (int64_t k = 0; k < st->channels; k++) out[i * st->channels + k] *= gain;
}

/* silence in frames [pos, pos + count) */
static inline void silence(const wb_state *st, float *out, int64_t pos, int64_t count) {
    memset(out + pos * st->channels, 0, (size_t)(count * st->channels) * sizeof(float));
}

/* fade out[end - f .. end) down to 0: the whole fade, or a whole shorter ramp (f - 1 - i) / f (JitterBuffer._ramp_down) */
static void ramp_down(const wb_state *st, float *out, int64_t end, int64_t f) {
    if (f == st->fade_len) {
        for (int64_t i = 0; i < f; i++) scale(st, out, end - f + i, fade_out_at(st, i));
    } else {
        for (int64_t i = 0; i < f; i++) scale(st, out, end - f + i, (float)(f - 1 - i) / (float)f);
    }
}

static void copy_out(wb_state *st, float *out, int64_t pos, int64_t take) {
    int64_t *c = st->ctl;
    int64_t r = c[C_READ];
    int64_t start = r % st->capacity;
    int64_t first = take < st->capacity - start ? take : st->capacity - start;
    int64_t ch = st->channels;
    memcpy(out + pos * ch, st->ring + start * ch, (size_t)(first * ch) * sizeof(float));
    if (take > first) memcpy(out + (pos + first) * ch, st->ring, (size_t)((take - first) * ch) * sizeof(float));
    if (c[C_FADE_IN_PENDING]) { /* 1 + how much of the fade-in was played: it goes on into the next block */
        int64_t at = c[C_FADE_IN_PENDING] - 1;
        int64_t f = take < st->fade_len - at ? take : st->fade_len - at;
        for (int64_t i = 0; i < f; i++) scale(st, out, pos + i, st->fade_in[at + i]);
        c[C_FADE_IN_PENDING] = at + f < st->fade_len ? at + f + 1 : 0;
    }
    int64_t sound = load(&c[C_SOUND_AT]);
    if (c[C_SOUND_BLOCK] < 0 && sound >= r && sound - r < take) {
        c[C_SOUND_OFFSET] = pos + sound - r;
        c[C_SOUND_BLOCK] = c[C_BLOCKS];
    }
    store(&c[C_READ], r + take);
    c[C_PLAYED] += take;
}

static void fade_end(wb_state *st, float *out, int64_t pos, int64_t take, int64_t left) {
    int64_t L = st->fade_len;
    int64_t j0 = left - L > 0 ? left - L : 0;
    for (int64_t j = j0; j < take; j++) scale(st, out, pos + j, fade_out_at(st, L - (left - j)));
}

/* while playing: the next few samples, faded out, at the start of `out`; how many */
static int64_t fade_out_now(wb_state *st, float *out, int64_t n) {
    int64_t *c = st->ctl;
    int64_t take = 0;
    if (c[C_STATE] == S_PLAYING) {
        int64_t level = load(&c[C_WRITE]) - c[C_READ];
        take = level < n ? level : n;
        if (take > st->fade_len) take = st->fade_len;
        if (take > 0) {
            copy_out(st, out, 0, take);
            ramp_down(st, out, take, take);
        }
    }
    return take;
}

static void finish_with_fade(wb_state *st, float *out, int64_t n) {
    int64_t *c = st->ctl;
    int64_t take = c[C_PAUSE_HELD] ? 0 : fade_out_now(st, out, n);
    if (take < n) silence(st, out, take, n - take);
    c[C_STATE] = S_DONE;
}

/* a block while paused: the first fades out what was playing, every one is silence after that */
static void hold(wb_state *st, float *out, int64_t n) {
    int64_t *c = st->ctl;
    int64_t take = 0;
    if (!c[C_PAUSE_HELD]) {
        take = fade_out_now(st, out, n);
        c[C_PAUSE_HELD] = 1;
    }
    if (take < n) silence(st, out, take, n - take);
    c[C_PAUSED_SAMPLES] += n - take;
}

/* fill `out` (n frames) with audio or silence and advance the state machine: JitterBuffer.read_into */
void wb_read(wb_state *st, float *out, int64_t n) {
    int64_t *c = st->ctl;
    int64_t pos = 0;
    c[C_BLOCKS] += 1;
    if (load(&c[C_STOP]) && c[C_STATE] != S_DONE) {
        finish_with_fade(st, out, n);
        return;
    }
    if (load(&c[C_PAUSE]) && c[C_STATE] < S_TRAILING) {
        hold(st, out, n);
        return;
    }
    if (c[C_PAUSE_HELD]) { /* resumed: the next sample played fades in */
        c[C_PAUSE_HELD] = 0;
        c[C_FADE_IN_PENDING] = c[C_STATE] == S_PLAYING;
    }
    if (c[C_STATE] == S_PLAYING && !load(&c[C_ENDED])) { /* the final drain is not a buffer level */
        int64_t level = load(&c[C_WRITE]) - c[C_READ];
        c[C_LEVEL_SUM] += level;
        c[C_LEVEL_COUNT] += 1;
        if (c[C_LEVEL_MIN] < 0 || level < c[C_LEVEL_MIN]) c[C_LEVEL_MIN] = level;
        if (level > c[C_LEVEL_MAX]) c[C_LEVEL_MAX] = level;
    }
    while (pos < n) {
        int64_t state = c[C_STATE];
        if (state == S_BUFFERING || state == S_UNDERRUN) {
            int64_t ended = load(&c[C_ENDED]);
            int64_t resume = load(&c[C_RESUME]);
            int64_t need = state == S_UNDERRUN && resume ? resume : load(&c[C_TARGET]);
            if (ended || load(&c[C_WRITE]) - c[C_READ] >= need) {
                c[C_STATE] = S_PLAYING;
                c[C_FADE_IN_PENDING] = state == S_UNDERRUN;
                if (state == S_BUFFERING) c[C_LEAD_LEFT] = load(&c[C_LEAD]);
                continue;
            }
            silence(st, out, pos, n - pos);
            if (state == S_UNDERRUN) c[C_UNDERRUN_SAMPLES] += n - pos;
            c[C_SILENCE] += n - pos;
            pos = n;
        } else if (state == S_PLAYING && c[C_LEAD_LEFT] > 0) {
            int64_t s = c[C_LEAD_LEFT] < n - pos ? c[C_LEAD_LEFT] : n - pos;
            silence(st, out, pos, s);
            c[C_LEAD_LEFT] -= s;
            c[C_SILENCE] += s;
            pos += s;
        } else if (state == S_PLAYING) {
            int64_t ended = load(&c[C_ENDED]); /* before the write counter: once ended, it is final */
            int64_t left = load(&c[C_WRITE]) - c[C_READ];
            int64_t take = left < n - pos ? left : n - pos;
            if (take > 0) {
                copy_out(st, out, pos, take);
                if (ended && left - take < st->fade_len && !load(&c[C_END_FADED])) fade_end(st, out, pos, take, left);
                if (c[C_FIRST_OFFSET] < 0) {
                    c[C_FIRST_OFFSET] = pos;
                    c[C_FIRST_BLOCK] = c[C_BLOCKS];
                }
                pos += take;
            }
            if (pos < n) {
                if (ended && load(&c[C_WRITE]) == c[C_READ]) {
                    c[C_STATE] = S_TRAILING;
                } else {
                    if (take > 0) ramp_down(st, out, pos, take < st->fade_len ? take : st->fade_len); /* no click */
                    c[C_UNDERRUNS] += 1;
                    c[C_STATE] = S_UNDERRUN;
                }
            } else if (take > 0 && !ended && load(&c[C_WRITE]) == c[C_READ]) {
                /* ran dry exactly at the block's end: fade out now, fade in what comes next */
                ramp_down(st, out, pos, take < st->fade_len ? take : st->fade_len);
                c[C_FADE_IN_PENDING] = 1;
            }
        } else if (state == S_TRAILING) {
            int64_t s = c[C_TRAILING_LEFT] < n - pos ? c[C_TRAILING_LEFT] : n - pos;
            silence(st, out, pos, s);
            c[C_TRAILING_LEFT] -= s;
            c[C_SILENCE] += s;
            pos += s;
            if (c[C_TRAILING_LEFT] == 0) c[C_STATE] = S_DONE;
        } else { /* done */
            silence(st, out, pos, n - pos);
            pos = n;
        }
    }
}

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* Python's perf_counter() on Linux */
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

typedef struct {
    double inputBufferAdcTime;
    double currentTime;
    double outputBufferDacTime;
} pa_time_info;

#define PA_OUTPUT_UNDERFLOW 0x00000004UL

/* the PortAudio stream callback: the block, then the sink's bookkeeping (Sink._after_block) */
int wb_callback(const void *input, void *output, unsigned long frames, const pa_time_info *time_info,
                unsigned long status, void *user) {
    (void)input;
    wb_state *st = (wb_state *)user;
    int64_t *c = st->ctl;
    float *out = (float *)output;
    int64_t n = (int64_t)frames;
    int64_t now = monotonic_ns();
    c[C_CALLBACKS] += 1;
    if (status & PA_OUTPUT_UNDERFLOW) c[C_DEVICE_UNDERFLOWS] += 1;
    wb_read(st, out, n);
    int64_t heard = now + (int64_t)((time_info->outputBufferDacTime - time_info->currentTime) * 1e9);
    int64_t per_sample_ns = 1000000000LL / st->rate;
    if (c[C_FIRST_HEARD_NS] == 0 && c[C_FIRST_BLOCK] == c[C_BLOCKS])
        store(&c[C_FIRST_HEARD_NS], heard + c[C_FIRST_OFFSET] * per_sample_ns);
    if (c[C_SOUND_HEARD_NS] == 0 && c[C_SOUND_BLOCK] == c[C_BLOCKS])
        store(&c[C_SOUND_HEARD_NS], heard + c[C_SOUND_OFFSET] * per_sample_ns);
    if (st->record != NULL) {
        int64_t w = c[C_REC_WRITE];
        int64_t ch = st->channels, start = w % st->record_capacity;
        int64_t first = n < st->record_capacity - start ? n : st->record_capacity - start; /* then wrap */
        memcpy(st->record + start * ch, out, (size_t)(first * ch) * sizeof(float));
        if (n > first) memcpy(st->record, out + first * ch, (size_t)((n - first) * ch) * sizeof(float));
        store(&c[C_REC_WRITE], w + n);
    }
    if (st->wake_fd >= 0) {
        int64_t below = load(&c[C_WAKE_BELOW]);
        if (below <= 0 || load(&c[C_WRITE]) - c[C_READ] < below) {
            /* non-blocking: a full pipe (nobody reading) just drops the byte */
            char one = 1;
            ssize_t ignored = write(st->wake_fd, &one, 1);
            (void)ignored;
        }
    }
    if (c[C_DONE_AT_NS] == 0 && c[C_STATE] == S_DONE) {
        store(&c[C_DONE_AT_NS], heard + n * per_sample_ns);
        if (st->done_fd >= 0) {
            char one = 1;
            ssize_t ignored = write(st->done_fd, &one, 1);
            (void)ignored;
        }
    }
    return 0; /* paContinue: the stream runs until the sink stops it */
}

int64_t wb_control_words(void) { return C_COUNT; }

/* present from the build whose callback writes to wake_fd (an older build leaves the pump polling) */
int64_t wb_wakes_after_blocks(void) { return 1; }

/* present from the build whose frames may have more than one channel (wb_state.channels) */
int64_t wb_frames_of_channels(void) { return 1; }

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_playout",
                                    "The audio callback in C; loaded with ctypes (see buffer.py and sinks.py).",
                                    -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__playout(void) { return PyModule_Create(&module); }
