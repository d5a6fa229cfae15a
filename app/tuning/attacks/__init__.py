"""Membership-inference attacks and the games they play: ART black-box (rf, nn), loss threshold, RMIA; intervals;
the empirical epsilon."""
