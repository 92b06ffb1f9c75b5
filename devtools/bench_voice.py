"""Benchmark (not a test): voice round trip on this machine (issue 16).

espeak-ng speaks ~10 s of an English question; it is encoded as OGG/Opus (a Telegram voice note), then
timed: ASR real-time factor (decode + transcription seconds per second of speech), TTS real-time factor
(synthesis + OGG/Opus encoding seconds per second of spoken answer), and end-to-end voice-answer latency
(audio in -> transcript -> answer -> spoken answer out). Target on 2 cores with tiny models: < 3 s.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from sibyl.settings import Settings

QUESTION = ("Hello. I would like to know what the City of Lecce is doing for the cycling network and for public "
            "transport, and which results it reached for sustainable mobility in its plans.")


def run_bench_voice(settings: Settings, rounds: int = 3, as_json: bool = False) -> str:
    from sibyl.conversation import ConversationService
    from sibyl.services import build_pipeline
    from sibyl.store import Store
    from sibyl.voice import VoiceService
    from sibyl.voice.audio import duration_seconds, to_ogg_opus

    voice = VoiceService.from_settings(settings)
    if voice.asr is None or voice.tts is None or not (voice.can_listen and voice.can_speak):
        raise ValueError("voice is off: install the voice extra (pip install -e '.[voice]') and Debian's espeak-ng")
    if not hasattr(voice.tts, "wav"):
        raise ValueError("bench-voice speaks its question with espeak-ng: unset SIBYL_TTS or set it to espeak-ng")
    note = to_ogg_opus(voice.tts.wav(QUESTION, "en"))
    speech_s = duration_seconds(note)
    started = time.perf_counter()
    voice.asr.load() if hasattr(voice.asr, "load") else None
    load_s = time.perf_counter() - started
    pipeline = build_pipeline(settings)
    with tempfile.TemporaryDirectory(prefix="sibyl-bench-voice-") as tmp:
        store = Store.from_settings(settings.model_copy(update={"database_url": f"sqlite:///{Path(tmp) / 'b.db'}"}))
        conversation = ConversationService(pipeline, store)
        heard = voice.transcribe(note)  # warm-up: first-call allocations of CTranslate2 and the pipeline
        voice.speak(conversation.reply(heard.transcript.text, channel="bench"))
        asr_rtf, tts_rtf, e2e, answer_s, e2e_cpu, transcript = [], [], [], [], [], ""
        for _ in range(rounds):
            c0 = time.process_time()  # CPU seconds of every thread: what the work costs on a busy machine too
            t0 = time.perf_counter()
            heard = voice.transcribe(note)
            t1 = time.perf_counter()
            payload = conversation.reply(heard.transcript.text, channel="bench")
            t2 = time.perf_counter()
            audio = voice.speak(payload)
            t3 = time.perf_counter()
            spoken_s = duration_seconds(audio)
            asr_rtf.append((t1 - t0) / speech_s)
            tts_rtf.append((t3 - t2) / spoken_s)
            answer_s.append(t2 - t1)
            e2e.append(t3 - t0)
            e2e_cpu.append(time.process_time() - c0)
            transcript = heard.transcript.text
        store.engine.dispose()
    report = {
        "asr": voice.asr.name, "tts": voice.tts.name, "rounds": rounds,
        "speech_seconds": round(speech_s, 2), "spoken_answer_seconds": round(spoken_s, 2),
        "asr_model_load_seconds": round(load_s, 2),
        "asr_rtf": round(statistics.median(asr_rtf), 3), "tts_rtf": round(statistics.median(tts_rtf), 3),
        "answer_seconds": round(statistics.median(answer_s), 3),
        "end_to_end_seconds_median": round(statistics.median(e2e), 2), "end_to_end_seconds_max": round(max(e2e), 2),
        "end_to_end_cpu_seconds_median": round(statistics.median(e2e_cpu), 2),
        "load_average_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
        "target_end_to_end_seconds": 3.0, "transcript": transcript,
    }
    if as_json:
        return json.dumps(report, ensure_ascii=False, indent=1)
    return "\n".join([
        f"voice bench: {report['asr']} + {report['tts']}, {rounds} rounds",
        f"  speech in            {report['speech_seconds']:.1f} s   (heard: {transcript!r})",
        f"  ASR model load       {report['asr_model_load_seconds']:.2f} s  (once per process)",
        f"  ASR real-time factor {report['asr_rtf']:.3f}  (decode + transcription / speech seconds)",
        f"  answer               {report['answer_seconds']:.3f} s",
        f"  TTS real-time factor {report['tts_rtf']:.3f}  (synthesis + OGG/Opus / "
        f"{report['spoken_answer_seconds']:.1f} s spoken)",
        f"  end to end           {report['end_to_end_seconds_median']:.2f} s median, "
        f"{report['end_to_end_seconds_max']:.2f} s max"
        f"  (target < {report['target_end_to_end_seconds']:.0f} s on 2 cores)",
        f"  end to end CPU       {report['end_to_end_cpu_seconds_median']:.2f} s of CPU (all threads); load average "
        f"{report['load_average_1min']} on {report['cpus']} cores during the run",
    ])
