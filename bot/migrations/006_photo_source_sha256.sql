-- The SHA-256 of the file as uploaded, so an exact copy is refused before it is decoded. NULL for photos
-- from before it was kept (their copies are still caught after decoding, by the stored file's SHA-256).
ALTER TABLE photos ADD COLUMN source_sha256 TEXT;
