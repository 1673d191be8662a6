-- The checkpoint behind a member's adapter: what /train and "Train more" build on. NULL for adapters
-- from before checkpoints were kept, and after the owner's choice was pruned away: then the file is built on.
ALTER TABLE adapters ADD COLUMN state TEXT;
