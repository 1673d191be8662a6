-- What a photo showed when it was looked at for faces (faces.verdict.Look as JSON: its size, sharpness, and
-- each face's box and descriptor); NULL for a photo not looked at (FACE_CHECKS off, or from before).
-- Verdicts are not stored: they are judged from the looks of the whole set, again whenever it changes.
ALTER TABLE photos ADD COLUMN look TEXT;
-- 1 when the member kept a photo the checks doubted (no face, several, someone else's): it trains then.
ALTER TABLE photos ADD COLUMN kept INTEGER NOT NULL DEFAULT 0;
