"""The reply's text, where the audio path begins: made speakable (`safetext`), split into sentences
(`split`), and errors walked safely for one-line messages (`errors`)."""
