-- Request chunks of 25,000 subjects by default instead of 5,000 (issue 13). A subject's
-- rows lie scattered over its tables' pages (they arrive with traffic, not by subject), so
-- every chunk reads again the pages it shares with the other chunks: at 1,000,000
-- customers and 20,000,000 events a 50,000-subject request read 2,350,026 blocks in ten
-- chunks, 1,288,706 in two and 785,875 in one (pg_stat_database, BENCHMARKS.md). 25,000
-- keeps a chunk's transaction to seconds and still gives two workers a chunk each.
-- An install that kept the old default gets the new one; a chosen size stays.
alter table pii.settings alter column chunk_size set default 25000;
update pii.settings set chunk_size = 25000 where chunk_size = 5000;
